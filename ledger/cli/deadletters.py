"""`ledger deadletters list|replay`: messages that could not be applied (in the database
without Kafka, on `billing.deadletter` with it)."""

from __future__ import annotations

import json

import typer

from ledger.app.ingest import RawRecord, process_records
from ledger.bootstrap import build_app, deadletter_store
from ledger.cli.tables import print_rows
from ledger.config import Settings, get_settings

deadletters_app = typer.Typer(help="Messages that could not be applied.")


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


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(deadletters_app, name="deadletters")
