"""`ledger projections rebuild|status`: the stored read models."""

from __future__ import annotations

import json

import typer

from ledger.bootstrap import build_app
from ledger.cli.tables import print_rows
from ledger.config import get_settings

projections_app = typer.Typer(help="Stored read models.")
# From this many events a rebuild folds on every core by default (below, one process is faster).
AUTO_WORKERS_FROM = 100_000


@projections_app.command("rebuild")
def projections_rebuild(
    name: str | None = typer.Argument(None, help="One projection, or all."),
    workers: int | None = typer.Option(
        None,
        min=1,
        max=64,
        help="Processes folding the event store (PostgreSQL; SQLite folds in one). Default: "
        f"one per core when the store holds {AUTO_WORKERS_FROM:,} events or more, else one "
        "(a worker's start-up costs about a second).",
    ),
) -> None:
    """Rebuild stored projections from the event store (rows equal the live ones).

    With more than one worker, live `ledger project` processes wait for the rebuild's
    commit from its start (with one, only while it writes)."""
    from rich.progress import Progress

    from ledger.process import usable_cores
    from ledger.store.db import Database
    from ledger.store.readmodels import rebuild

    settings = get_settings()
    ledger = build_app(settings)
    head = ledger.head_position()
    if workers is None:
        workers = usable_cores() if head >= AUTO_WORKERS_FROM else 1
    with Progress(transient=True) as bar:
        task = bar.add_task("rebuilding", total=head)
        count = rebuild(
            ledger,
            Database(settings.database_url),
            [name] if name else None,
            progress=lambda n: bar.advance(task, n),
            workers=workers,
        )
    typer.echo(f"rebuilt {name or 'all projections'} from {count} events")


@projections_app.command("status")
def projections_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each projection's last applied global position, the log head and the lag; with
    Kafka also `unconsumed`: records on ledger.events that `ledger project` has not applied
    (the exact catch-up test: positions of different partitions move independently)."""
    from ledger.store.db import Database
    from ledger.store.readmodels import status
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


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(projections_app, name="projections")
