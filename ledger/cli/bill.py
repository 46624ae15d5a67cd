"""`ledger bill partner-center FILE.csv`: bill customers from Microsoft's reconciliation file
(SPEC §10). The use case is `ledger.app.billing`; this module wires it: the price book file,
the event store (customers), and where the charges go — ingested in-process (dead letters kept
in the database), or published to `billing.charges` when LEDGER_KAFKA_BOOTSTRAP is set, for
`ledger consume` to ingest like any upstream. With `--workers N` (PostgreSQL) the file is
billed on N processes split by customer (`ledger.app.billing_shards`)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ledger.app.billing import (
    BillingReport,
    CustomerLookup,
    DecisionLookup,
    Send,
    bill_text,
    log_report,
    lookup_from_registrations,
    scan_file,
)
from ledger.app.ingest import IngestCounts, RawRecord, process_records
from ledger.cli.options import parse_period
from ledger.cli.tables import print_rows
from ledger.config import Settings, get_settings
from ledger.domain.pricebook import PriceBook, PriceBookError, load_price_book
from ledger.process import tune_gc, usable_cores

if TYPE_CHECKING:
    from ledger.app.application import LedgerApplication
    from ledger.app.billing import FileSummary

bill_app = typer.Typer(help="Bill customers from Microsoft's data (price book, SPEC §10).")
PROGRESS_FROM = 2000  # lines: shorter files bill in a blink, no bar
# The default --workers: two processes bill a 100,000-line file ~1.5x as fast as one, in ~235
# MB (PSS) against ~190 (docs/billing.md); each more adds an interpreter and its accounts.
AUTO_WORKERS = 2
AUTO_WORKERS_FROM_BYTES = 10 << 20  # below it the workers' start-up outweighs the gain


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `ledger` app."""
    app.add_typer(bill_app, name="bill")


def read_price_book(path: Path | None, settings: Settings) -> PriceBook:
    """The price book of --price-book, else LEDGER_PRICE_BOOK; none is an error (fail closed:
    never bill at a price nobody set)."""
    chosen = path or settings.price_book
    if chosen is None:
        raise PriceBookError("no price book: give --price-book FILE.toml or set LEDGER_PRICE_BOOK")
    try:
        text = Path(chosen).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceBookError(f"{chosen}: cannot be read ({exc})") from None
    return load_price_book(text, str(chosen))


def auto_workers(file: Path, sharded_possible: bool) -> int:
    """The default --workers: AUTO_WORKERS for a file of AUTO_WORKERS_FROM_BYTES or more when
    they can be used (PostgreSQL, ingest in-process) and the machine has as many cores."""
    if not sharded_possible or usable_cores() < AUTO_WORKERS:
        return 1
    return AUTO_WORKERS if file.stat().st_size >= AUTO_WORKERS_FROM_BYTES else 1


def _ingest_send(settings: Settings, ledger: LedgerApplication) -> Send:
    from ledger.bootstrap import deadletter_store

    store = deadletter_store(settings)

    def send(records: list[RawRecord]) -> IngestCounts:
        counts = process_records(ledger, records)
        if counts.dead_letters:
            store.add(counts.dead_letters)
        return counts

    return send


@contextmanager
def _kafka_send(settings: Settings) -> Iterator[Send]:
    from consumers.kafka_support import ensure_topics, make_producer

    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, [settings.topic_charges])
    producer = make_producer(settings.kafka_bootstrap)

    def send(records: list[RawRecord]) -> IngestCounts:
        futures = []
        for record in records:
            value = record.value.encode("utf-8") if isinstance(record.value, str) else record.value
            key = record.key.encode("utf-8") if isinstance(record.key, str) else record.key
            futures.append(producer.send(settings.topic_charges, key=key, value=value))
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises when Kafka did not take it: the run fails, exit 1
        return IngestCounts(applied=len(records))

    try:
        yield send
    finally:
        producer.close(timeout=10)


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    console = Console(stderr=True)
    with Progress(TextColumn("billing"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:  # fmt: skip
        task: list[object] = []

        def advance(done: int, total: int) -> None:
            if total < PROGRESS_FROM:
                return
            if not task:
                task.append(bar.add_task("billing", total=total))
            bar.advance(task[0], done)  # type: ignore[arg-type]

        yield advance


def partner_center(
    file: Path = typer.Argument(..., help="Partner Center new-commerce reconciliation CSV."),
    price_book: Path | None = typer.Option(
        None, "--price-book", help="Price book TOML (default: LEDGER_PRICE_BOOK)."
    ),
    period: str | None = typer.Option(
        None, "--period", help="Billing period YYYY-MM (default: the file's, as reconcile finds)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Price and report; post nothing."),
    as_json: bool = typer.Option(False, "--json", help="The SPEC §10 report as JSON."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=64,
        help="Processes that bill the file, split by customer (PostgreSQL, ingest in-process;"
        f" a dry run and Kafka use one). Default: {AUTO_WORKERS} on PostgreSQL for a file of"
        f" {AUTO_WORKERS_FROM_BYTES >> 20} MB or more (~20,000 lines) when the machine has as"
        " many cores, else one.",
    ),
) -> None:
    """Turn every line of Microsoft's invoice file into a customer charge at the price book's
    prices, through the normal ingest path (idempotent: a second run posts nothing)."""
    if not file.is_file():
        raise typer.BadParameter(f"{str(file)!r} is not a file", param_hint="FILE")
    chosen_period = parse_period(period) if period is not None else None
    settings = get_settings()
    book = read_price_book(price_book, settings)  # before anything is read or posted
    in_process = not dry_run and not settings.kafka_bootstrap
    if workers is None:
        workers = auto_workers(file, settings.is_postgres and in_process)
    sharded = workers > 1 and in_process
    if sharded and not settings.is_postgres:
        raise typer.BadParameter(
            "more than one worker needs PostgreSQL (SQLite takes one writer at a time)",
            param_hint="--workers",
        )
    # The whole file is read and checked before anything is sent (ReconFileError); then
    # billed as it is read again from disk, a batch at a time, never held whole
    # (ledger.app.billing.scan_file; FileChanged if it is not the file checked).
    summary = scan_file(file, chosen_period, shards=workers if sharded else 1)
    tune_gc()  # the workers inherit it
    if sharded:
        report = _bill_in_workers(settings, file, summary, book, workers, str(file))
    else:
        with _progress_bar() as progress:
            report = _bill_here(settings, file, summary, book, str(file), progress, dry_run)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, settings.topic_charges)


def _bill_here(
    settings: Settings, file: Path, summary: FileSummary, book: PriceBook, source: str,
    progress: Callable[[int, int], None], dry_run: bool,
) -> BillingReport:  # fmt: skip
    """Bill in this process: ingest in-process, publish (Kafka) or a dry run. Only each
    customer's registration is read (its currency); what ingest would find of each charge,
    for a dry run and Kafka, is its recorded decision (SPEC §3), one query a batch."""
    from ledger.bootstrap import build_app

    ledger = build_app(settings)
    customers = lookup_from_registrations(ledger.registration)

    def bill(send: Send | None, delivered: bool = True) -> BillingReport:
        return bill_text(file, summary, book, customers, send, source=source,
                         progress=progress, delivered=delivered,
                         decided=ledger.select_decisions)  # fmt: skip

    if dry_run:
        report = bill(None)
    elif settings.kafka_bootstrap:
        with _kafka_send(settings) as send:
            report = bill(send, delivered=False)
    else:
        report = bill(_ingest_send(settings, ledger))
    log_report(report)
    return report


def _bill_in_workers(
    settings: Settings, file: Path, summary: FileSummary, book: PriceBook, workers: int,
    source: str,
) -> BillingReport:  # fmt: skip
    """Bill on `workers` processes (ledger.app.billing_shards), each with its own ledger,
    forked before the progress bar starts its thread."""
    from ledger.app.billing_shards import BillingWorkersFailed, start_workers
    from ledger.config import check_settings
    from ledger.store.policy_file import load_policies

    check_settings(settings)  # configuration mistakes fail here, before any worker starts
    load_policies(settings.policy_file)

    @contextmanager
    def store() -> Iterator[tuple[CustomerLookup, Send, DecisionLookup]]:
        from ledger.bootstrap import build_app

        ledger = build_app(settings)
        try:
            yield (lookup_from_registrations(ledger.registration),
                   _ingest_send(settings, ledger), ledger.select_decisions)  # fmt: skip
        finally:
            ledger.close()

    # What each worker's ledger needs, imported once before the fork: the workers share it.
    for module in ("ledger.bootstrap", "ledger.store.pgrecorder", "psycopg_pool"):
        importlib.import_module(module)
    running = start_workers(file, summary, book, store, workers=workers, source=source)
    try:
        with _progress_bar() as progress:
            return running.collect(progress)
    except BillingWorkersFailed as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def print_report(report: BillingReport, topic: str) -> None:
    doc = report.to_json()
    console = Console(width=200)
    verb = "would bill" if report.dry_run else f"published to {topic}" if report.published \
        else "billed"  # fmt: skip
    console.print(
        f"invoice {doc['invoice_number']} for {doc['billing_period']}: {doc['lines']} lines, "
        f"{verb} {doc['billed']}, duplicates {doc['duplicates']}, "
        f"not billed {len(doc['not_billed'])}"
    )
    print_rows(
        [{"customer": c["customer_id"], "currency": c["currency"], "lines": c["lines"],
          "cost": c["cost"], "amount": c["amount"], "margin": c["margin"],
          "margin %": c["margin_percent"],
          "lines below min margin": _few(c["below_min_margin"])}
         for c in doc["customers"]],
        title="Billing by customer", console=console,
    )  # fmt: skip
    totals = doc["totals"]
    for row in totals.get("by_currency", [totals]):
        if row.get("currency"):
            console.print(f"total {row['currency']}: cost {row['cost']}, amount {row['amount']}, "
                          f"margin {row['margin']}")  # fmt: skip
    for item in doc["not_billed"]:
        console.print(f"  not billed: line {item['line']}: {item['reason']}", markup=False)


def _few(lines: list[int], shown: int = 5) -> str | None:
    """'3, 8, 9' or '3, 8, 9, 12, 15 … (40 lines)' (all of them are in --json)."""
    if not lines:
        return None
    text = ", ".join(map(str, lines[:shown]))
    return text if len(lines) <= shown else f"{text} … ({len(lines)} lines)"


bill_app.command("partner-center")(partner_center)
