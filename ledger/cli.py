"""The `ledger` command line. Exit codes: 0 success, 1 failure, 2 bad usage."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import typer

from ledger import __version__
from ledger.bootstrap import build_app, deadletter_store
from ledger.cli_options import parse_customer, parse_day, parse_period, today
from ledger.config import ConfigError, Settings, check_settings, get_settings
from ledger.domain.errors import LedgerError
from ledger.domain.policy import describe
from ledger.ingest import IngestCounts, RawRecord, process_records
from ledger.logs import configure_logging
from ledger.reconcile import day_after as _day_after
from ledger.tables import print_rows

app = typer.Typer(
    add_completion=False, help="Event-sourced billing ledger for Microsoft CSP partners."
)
invoice_app = typer.Typer(help="Invoice runs.")
deadletters_app = typer.Typer(help="Messages that could not be applied.")
collections_app = typer.Typer(help="Dunning, suspension and reinstatement.")
policy_app = typer.Typer(help="Collections policies.")
projections_app = typer.Typer(help="Stored read models.")
app.add_typer(invoice_app, name="invoice")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(collections_app, name="collections")
app.add_typer(policy_app, name="policy")
app.add_typer(projections_app, name="projections")

VIEW_NAMES = "balances|delinquency|remittance|support|trial-balance|microsoft"
METRICS_HELP = "Serve this process's Prometheus counters on 127.0.0.1:PORT/metrics."


class CliError(Exception):
    """A failure to report in one line on stderr, exit 1."""


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if ctx.invoked_subcommand is None:
        typer.echo(f"ledger {__version__}: {settings.store_description()}")
        typer.echo("Try `ledger demo`, or `ledger --help` for every command.")


@app.command()
def info() -> None:
    """Show the version and which store and delivery this process uses."""
    typer.echo(f"ledger {__version__}: {check_settings(get_settings()).store_description()}")


# ---- ingest and dead letters ---------------------------------------------------------------


def _lines(source: str) -> Iterator[RawRecord]:
    handle = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    name = "stdin" if source == "-" else source
    with handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield RawRecord(value=line, source=name, offset=number)


@app.command()
def ingest(
    source: str = typer.Argument(..., help="A JSONL file of SPEC §3 messages, or - for stdin."),
    batch_size: int = typer.Option(500, min=1, help="Messages per database transaction."),
) -> None:
    """Feed messages without Kafka: same validation, idempotency and dead letters."""
    if source != "-" and not Path(source).is_file():
        raise typer.BadParameter(f"{source!r} is not a file", param_hint="SOURCE")
    settings = get_settings()
    ledger = build_app(settings)
    total = IngestCounts()
    batch: list[RawRecord] = []

    def flush() -> None:
        # Dead letters go into the batch's own transaction (a crash cannot separate a
        # refusal from its dead letter); a line refused before is not decided again.
        counts = process_records(ledger, batch, store_dead_letters=True)
        total.add(counts)
        batch.clear()
        typer.echo(f"… {total.applied + total.duplicate + total.deadlettered} lines", err=True)

    for record in _lines(source):
        batch.append(record)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    typer.echo(
        f"applied {total.applied}, duplicate {total.duplicate}, dead-lettered {total.deadlettered}"
        f", refused before {total.refused_before}"
    )
    for letter in total.dead_letters:
        typer.echo(f"  line {letter.offset}: {letter.code}: {letter.message}")


@deadletters_app.command("list")
def deadletters_list(
    as_json: bool = typer.Option(False, "--json", help="Rows as a JSON array."),
    code: str | None = typer.Option(None, help="Only this error code."),
) -> None:
    """Dead letters: on `billing.deadletter` with Kafka, in the database without."""
    settings = get_settings()
    if settings.kafka_bootstrap:
        _list_kafka_dead_letters(settings, code, as_json)
        return
    letters = deadletter_store(settings).list(code)
    if as_json:
        typer.echo(json.dumps([d.to_json() for d in letters], indent=2))
        return
    print_rows(
        [{"id": d.id, "code": d.code, "message": d.message, "source": d.source,
          "offset": d.offset, "replayed_at": d.replayed_at} for d in letters],
        title="Dead letters",
    )  # fmt: skip


def _list_kafka_dead_letters(settings: Settings, code: str | None, as_json: bool) -> None:
    from consumers.deadletters import read_dead_letters

    letters = [d for d in read_dead_letters(settings) if code in (None, d.record.get("code"))]
    rows = [{"partition": d.partition, "offset": d.offset, **d.record} for d in letters]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_rows(
        [{k: r.get(k) for k in ("partition", "offset", "code", "message", "source_topic")}
         for r in rows],
        title=f"Dead letters on {settings.topic_deadletter}",
    )  # fmt: skip


@deadletters_app.command("replay")
def deadletters_replay(code: str | None = typer.Option(None, help="Only this error code.")) -> None:
    """Re-submit dead letters (after the cause is fixed). Embedded: applied now, and marked
    when they apply. With Kafka: re-sent to their source topic for `ledger consume`."""
    settings = get_settings()
    if settings.kafka_bootstrap:
        from consumers.deadletters import replay_dead_letters

        sent, skipped = replay_dead_letters(settings, code)
        typer.echo(f"re-sent {sent} dead letters to their topics ({skipped} replayed before)")
        return
    ledger = build_app(settings)
    store = deadletter_store(settings)
    pending = store.list(code, include_replayed=False)
    fixed: list[int] = []
    still: list[str] = []
    for letter in pending:
        record = RawRecord(
            value=letter.raw_bytes(),
            source=letter.source,
            partition=letter.partition,
            offset=letter.offset,
            key=letter.key,
            replay=True,  # decided again, on purpose (not "refused before")
        )
        counts = process_records(ledger, [record])
        if counts.dead_letters:
            still.append(f"  #{letter.id}: {counts.dead_letters[0].code}: "
                         f"{counts.dead_letters[0].message}")  # fmt: skip
        else:
            assert letter.id is not None
            fixed.append(letter.id)
    store.mark_replayed(fixed)
    typer.echo(f"replayed {len(fixed)}, still failing {len(still)}")
    for line in still:
        typer.echo(line)


@app.command()
def consume(
    max_batch: int = typer.Option(1000, min=1, help="Records per poll and transaction."),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Ingest from Kafka (SPEC §3 topics) until SIGTERM/SIGINT; scale out by running more."""
    from consumers.ingest import IngestConsumer
    from consumers.kafka_support import StopFlag, wait_for_store

    settings = _kafka_settings("consume")
    _serve_metrics(metrics_port)
    stop = StopFlag().install()
    ledger = wait_for_store(lambda: build_app(settings), stop, "consume")
    if ledger is not None:  # (None: stopped before the database came back)
        IngestConsumer(ledger, settings, stop, max_batch=max_batch).run()


@app.command()
def publish(
    batch_size: int = typer.Option(2000, min=1),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Publish stored events to `ledger.events` in global order until SIGTERM/SIGINT."""
    from consumers.kafka_support import StopFlag
    from consumers.publish import Publisher

    settings = _kafka_settings("publish")
    _serve_metrics(metrics_port)
    Publisher(build_app(settings), settings, StopFlag().install(), batch_size=batch_size).run()


@app.command()
def project(
    max_batch: int = typer.Option(2000, min=1),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Maintain the read models from `ledger.events` until SIGTERM/SIGINT; scale out by
    running more (they share partitions through the consumer group)."""
    from consumers.kafka_support import StopFlag
    from consumers.project import Projector

    _serve_metrics(metrics_port)
    Projector(_kafka_settings("project"), StopFlag().install(), max_batch=max_batch).run()


def _serve_metrics(port: int | None) -> None:
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def _kafka_settings(command: str) -> Settings:
    settings = get_settings()
    if not settings.kafka_bootstrap:
        raise CliError(f"`ledger {command}` needs LEDGER_KAFKA_BOOTSTRAP (host:port)")
    return check_settings(settings)


# ---- runs ---------------------------------------------------------------------------------


@invoice_app.command("run")
def invoice_run(
    period: str = typer.Option(..., help="Billing period YYYY-MM."),
    on: str | None = typer.Option(
        None, "--date", help="Invoice date (default: day after the period)."
    ),
) -> None:
    """Issue one invoice per customer with unbilled charges of the period or earlier."""
    period = parse_period(period)
    invoice_date = parse_day(on, "--date") or _day_after(period)  # periods end by 9000-12
    ledger = build_app(get_settings())
    from ledger.periods import refuse_if_closed  # SPEC §13: a closed period is not billed

    refuse_if_closed(ledger, period, "invoice run")
    issued = ledger.run_invoices(period, invoice_date)
    typer.echo(f"issued {len(issued)} invoices for {period} dated {invoice_date}")


@collections_app.command("run")
def collections_run(
    as_of: str | None = typer.Option(None, "--as-of", help="Default: today (UTC)."),
) -> None:
    """Apply every customer's collections policy as of a date. Safe to re-run."""
    _collections(parse_day(as_of, "--as-of") or today(), dry_run=False)


@collections_app.command("preview")
def collections_preview(as_of: str | None = typer.Option(None, "--as-of")) -> None:
    """What a run would do, without doing it."""
    _collections(parse_day(as_of, "--as-of") or today(), dry_run=True)


def _check_at(value: str) -> str:
    from ledger.schedule import parse_at

    try:
        parse_at(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--at") from None
    return value


@collections_app.command("schedule")
def collections_schedule(
    at: str = typer.Option(
        ..., "--at", callback=_check_at, help="Time of day to run, HH:MM in UTC (e.g. 06:05)."
    ),
    once_now: bool = typer.Option(
        False, "--once-now", help="Also run once right away at start (catch up after downtime)."
    ),
) -> None:
    """Service mode: run `collections run` for today (UTC) every day at --at, until
    SIGTERM/SIGINT. Each run is logged (JSON); a failed run is retried every minute for that
    day. Runs are idempotent and catch up on every step due, so a missed or repeated run is
    harmless. The cron equivalent: `5 6 * * * ledger collections run` (cron in UTC)."""
    from consumers.kafka_support import StopFlag
    from ledger.schedule import CollectionsSchedule, parse_at

    ledger = build_app(get_settings())
    from ledger.microsoft import collections_and_microsoft

    schedule = CollectionsSchedule(
        lambda as_of: collections_and_microsoft(ledger, as_of), parse_at(at), StopFlag().install()
    )
    schedule.loop(once_now=once_now)


def _collections(as_of: date, dry_run: bool) -> None:
    from ledger.application import CollectionsIncomplete

    ledger = build_app(get_settings())
    from ledger.microsoft import collections_and_microsoft  # the Microsoft check runs too

    incomplete: CollectionsIncomplete | None = None
    try:
        fired = collections_and_microsoft(ledger, as_of, dry_run=dry_run)
    except CollectionsIncomplete as error:
        # The others were done: say what was, then name every customer left out (exit 1).
        incomplete, fired = error, error.fired
    verb = "would fire" if dry_run else "fired"
    typer.echo(f"{verb} {len(fired)} events as of {as_of}")
    for item in fired:
        what = item.get("action") or item["event_type"]
        target = item.get("subscription_id") or item.get("invoice_id")
        typer.echo(f"  {item['customer_id']}: {what} {target}")
    if incomplete is not None:
        for skipped in incomplete.skipped:
            typer.echo(f"error: {skipped.message}", err=True)
        raise typer.Exit(1)


@policy_app.command("show")
def policy_show(name: str | None = typer.Argument(None)) -> None:
    """Print a policy (or all) in words a customer could read."""
    ledger = build_app(get_settings())
    names = [name] if name else sorted(ledger.policies)
    for policy_name in names:
        if policy_name not in ledger.policies:
            raise CliError(f"policy: {policy_name!r} is not defined")
        typer.echo(describe(ledger.policies[policy_name]))


# ---- reading ------------------------------------------------------------------------------


@app.command()
def show(
    view: str = typer.Argument(..., help=VIEW_NAMES),
    customer: str | None = typer.Option(None, "--customer"),
    as_of: str | None = typer.Option(None, "--as-of", help="Date; a past date replays history."),
    as_json: bool = typer.Option(False, "--json"),
    status: str | None = typer.Option(None, help="support: open, escalated or resolved."),
    period: str | None = typer.Option(None, help="remittance: one billing period."),
    as_recorded_at: str | None = typer.Option(
        None,
        "--as-recorded-at",
        help="Instant (ISO 8601, UTC if no offset): only events "
        "recorded by then, as the ledger showed it (as of that day unless --as-of).",
    ),
) -> None:
    """Print a view of SPEC §6 as a table, or as JSON rows with --json."""
    from ledger.readmodels import view_rows
    from ledger.views import VIEWS

    if view not in VIEWS:
        raise typer.BadParameter(f"{view!r} is not one of {VIEW_NAMES}", param_hint="VIEW")
    from ledger.cli_options import parse_instant

    day = parse_day(as_of, "--as-of")
    recorded_at = parse_instant(as_recorded_at, "--as-recorded-at")
    if day is None and recorded_at is not None:
        day = recorded_at.date()  # what the ledger showed then, it showed as of that day
    settings = get_settings()
    historical = as_of is not None and day is not None and day < today()
    rows = view_rows(
        build_app(settings), settings, view, day or today(), historical=historical,
        recorded_at=recorded_at, customer_id=parse_customer(customer), status=status,
        period=period,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        if view == "microsoft":  # a row per currency, then its invoices
            from ledger.cli_microsoft import print_microsoft

            print_microsoft(rows, day or today())
            return
        if view == "remittance":  # the table marks periods overdue or due within 7 days
            from ledger.cli_remittance import remittance_table

            rows = remittance_table(rows, day or today())
        print_rows(rows, title=f"{view} as of {day or today()}")


@projections_app.command("rebuild")
def projections_rebuild(
    name: str | None = typer.Argument(None, help="One projection, or all."),
) -> None:
    """Rebuild stored projections from the event store (rows equal the live ones)."""
    from rich.progress import Progress

    from ledger.db import Database
    from ledger.readmodels import rebuild

    settings = get_settings()
    ledger = build_app(settings)
    head = ledger.head_position()
    with Progress(transient=True) as bar:
        task = bar.add_task("rebuilding", total=head)
        count = rebuild(
            ledger,
            Database(settings.database_url),
            [name] if name else None,
            progress=lambda n: bar.advance(task, n),
        )
    typer.echo(f"rebuilt {name or 'all projections'} from {count} events")


@projections_app.command("status")
def projections_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each projection's last applied global position, the log head and the lag; with
    Kafka also `unconsumed`: records on ledger.events that `ledger project` has not applied
    (the exact catch-up test: positions of different partitions move independently)."""
    from ledger.db import Database
    from ledger.readmodels import status
    from projections.store import RowStore

    settings = get_settings()
    db = Database(settings.database_url)
    rows: list[dict[str, object]] = [
        {"projection": s.projection, "position": s.position, "head": s.head, "lag": s.lag}
        for s in status(build_app(settings), db)
    ]
    if settings.kafka_bootstrap:
        from consumers.kafka_support import unconsumed

        offsets = RowStore(db).offsets(settings.consumer_group_project, settings.topic_events)
        behind = unconsumed(settings.kafka_bootstrap, settings.topic_events, offsets)
        for row in rows:
            row["unconsumed"] = behind
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_rows(rows, title="projections")


def _register_areas() -> None:
    """Commands of other areas live in their own modules; each adds itself to `app`."""
    from ledger import (
        cli_api,
        cli_audit_checkpoint,
        cli_demo,
        cli_microsoft,
        cli_period,
        cli_remittance,
    )

    areas = (cli_remittance, cli_api, cli_demo, cli_microsoft, cli_audit_checkpoint, cli_period)
    for area in areas:
        area.register(app)


_register_areas()


def main() -> None:
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(1)
    except (LedgerError, CliError, ConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OverflowError as error:  # a date computed from input beyond the calendar
        typer.echo(f"error: a date is out of range ({error})", err=True)
        sys.exit(1)
    except Exception as error:  # click usage errors carry exit code 2
        import click

        # typer >= 0.16 raises its vendored click's errors (typer.TyperException), not click's.
        if isinstance(error, click.ClickException | typer.TyperException) and hasattr(
            error, "show"
        ):
            error.show()
            sys.exit(getattr(error, "exit_code", 2))
        typer.echo(f"error: {_one_line(error)}", err=True)
        if _wants_traceback():
            raise
        sys.exit(1)


def _one_line(error: BaseException) -> str:
    """SPEC §9: one clear line for what reaches the top: the store, the configuration, Kafka,
    or (anything else) the exception's type and first line."""
    import sqlite3

    import psycopg
    import pydantic
    from eventsourcing.persistence import PersistenceError

    from ledger.config import redacted
    from ledger.storage import UnsupportedDatabaseUrl
    from ledger.tokens import TokenError

    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, UnsupportedDatabaseUrl | TokenError):
        return first
    if isinstance(error, pydantic.ValidationError):
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        return f"configuration: LEDGER_{where.upper()}: {problem['msg']}"
    if isinstance(error, PersistenceError | sqlite3.Error | psycopg.Error):
        try:
            url = redacted(get_settings().database_url)
        except Exception:
            url = "LEDGER_DATABASE_URL"
        return f"database {url}: {first} ({type(error).__name__})"
    if type(error).__module__.startswith("kafka"):
        name = type(error).__name__
        return f"Kafka ({get_settings().kafka_bootstrap}): {first if name in first else name}"
    if isinstance(error, OSError | ValueError | ArithmeticError):
        return f"{type(error).__name__}: {first}"
    return f"unexpected {type(error).__name__}: {first} (LEDGER_LOG_LEVEL=debug shows where)"


def _wants_traceback() -> bool:
    """The traceback, for a developer, only with LEDGER_LOG_LEVEL=debug."""
    import os

    return os.environ.get("LEDGER_LOG_LEVEL", "").lower() == "debug"
