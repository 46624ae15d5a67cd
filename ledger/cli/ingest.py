"""`ledger ingest FILE`: feed SPEC §3 messages from a JSONL file or stdin, without Kafka."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from ledger.app.ingest import IngestCounts, RawRecord, process_records
from ledger.bootstrap import build_app
from ledger.config import get_settings
from ledger.process import tune_gc


def _lines(source: str) -> Iterator[RawRecord]:
    handle = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    name = "stdin" if source == "-" else source
    with handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield RawRecord(value=line, source=name, offset=number)


def ingest(
    source: str = typer.Argument(..., help="A JSONL file of SPEC §3 messages, or - for stdin."),
    batch_size: int = typer.Option(500, min=1, help="Messages per database transaction."),
) -> None:
    """Feed messages without Kafka: same validation, idempotency and dead letters."""
    if source != "-" and not Path(source).is_file():
        raise typer.BadParameter(f"{source!r} is not a file", param_hint="SOURCE")
    settings = get_settings()
    ledger = build_app(settings)
    tune_gc()
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


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.command()(ingest)
