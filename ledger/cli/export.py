"""`ledger export journal|invoices`: the books out to the accounting system (SPEC §12).

Rows stream to stdout or to `-o FILE`. A file is written under a temporary name next to it
and renamed when complete, so a failed export (exit 1) never leaves a partial file behind;
on stdout the rows already written stay, and the exit code says it failed.
"""

from __future__ import annotations

import csv
import json
import operator
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import typer

from ledger.app.exports.invoices import INVOICE_COLUMNS, period_invoices
from ledger.app.exports.xero import (
    DATE_FORMATS,
    DEFAULT_ACCOUNT_CODE,
    DEFAULT_DATE_FORMAT,
    DEFAULT_NO_TAX_TYPE,
    DEFAULT_TAX_TYPE,
    XERO_COLUMNS,
    XeroOptions,
    XeroReport,
    xero_rows,
)
from ledger.cli.options import parse_day, parse_period

export_app = typer.Typer(help="Exports for the accounting system: journal lines, invoices.")

# Below these, an export takes a few seconds: no bar.
PROGRESS_FROM = {"events": 10_000, "customers": 500}
JOURNAL_FORMATS = ("csv", "jsonl")
INVOICE_FORMATS = ("xero", "csv")


@export_app.command("journal")
def export_journal(
    start: str = typer.Option(..., "--from", help="First posting date, YYYY-MM-DD."),
    end: str = typer.Option(..., "--to", help="Last posting date, YYYY-MM-DD (inclusive)."),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
) -> None:
    """One row per journal line posted from --from to --to (posting dates: a line dated in a
    closed period posts on the first day of the first open one): entry_id, posting_date,
    occurred_at, account, customer_id, currency, debit, credit, event_type, reference, memo.
    Debits equal credits per currency (checked; exit 1 otherwise)."""
    from ledger.app.exports.journal import JOURNAL_COLUMNS, ExportTotals, journal_export
    from ledger.app.views import published_events
    from ledger.bootstrap import build_app
    from ledger.config import check_settings, get_settings

    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    assert first is not None and last is not None
    if first > last:
        raise typer.BadParameter(f"{start} is after --to {end}", param_hint="--from")
    _check_format(fmt, JOURNAL_FORMATS)
    app = build_app(check_settings(get_settings()))
    totals = ExportTotals()
    with _progress("journal", app.head_position(), "events") as progress:
        rows = journal_export(published_events(app), first, last, totals, progress)
        _write(rows, JOURNAL_COLUMNS, fmt, output)
    sums = ", ".join(f"{c} {totals.debit[c]}" for c in sorted(totals.debit)) or "nothing"
    typer.echo(f"exported {totals.rows} journal lines posted {first} to {last} "
               f"({totals.events} events read); debits = credits: {sums}", err=True)  # fmt: skip


@export_app.command("invoices")
def export_invoices(
    period: str = typer.Option(..., "--period", help="Billing period, YYYY-MM."),
    fmt: str = typer.Option("xero", "--format", help="xero (Xero's import CSV) or csv."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
    account_code: str = typer.Option(
        DEFAULT_ACCOUNT_CODE,
        "--account-code",
        help="xero: AccountCode of every line (200: Sales in Xero's default chart).",
    ),
    tax_type: str = typer.Option(
        DEFAULT_TAX_TYPE, "--tax-type", help="xero: TaxType of lines of taxed invoices."
    ),
    no_tax_type: str = typer.Option(
        DEFAULT_NO_TAX_TYPE, "--no-tax-type", help="xero: TaxType of lines of untaxed invoices."
    ),
    date_format: str = typer.Option(
        DEFAULT_DATE_FORMAT, "--date-format", help="xero: DD/MM/YYYY or MM/DD/YYYY (US)."
    ),
) -> None:
    """The invoices of a billing period (a debit memo: of the month of its date). xero: Xero's
    sales-invoice import CSV, one row per invoice line (amounts tax exclusive; void and credit
    invoices left out, named on stderr). csv: the invoices view (SPEC §12) with customer_id
    and currency."""
    from ledger.bootstrap import build_app
    from ledger.config import check_settings, get_settings
    from ledger.documents.service import customer_events

    period = parse_period(period)
    _check_format(fmt, INVOICE_FORMATS)
    if date_format not in DATE_FORMATS:
        raise typer.BadParameter(f"{date_format!r} is not one of {', '.join(DATE_FORMATS)}",
                                 param_hint="--date-format")  # fmt: skip
    app = build_app(check_settings(get_settings()))
    customers = app.customer_ids()
    with _progress("invoices", len(customers), "customers") as progress:
        streams = _each(customers, lambda c: customer_events(app, c), progress)
        if fmt == "csv":
            rows = (invoice for _, invoice in period_invoices(streams, period))
            count = _write(rows, INVOICE_COLUMNS, "csv", output)
            typer.echo(f"exported {count} invoices of {period}", err=True)
            return
        options = XeroOptions(account_code, tax_type, no_tax_type, date_format)
        report = XeroReport()
        _write(xero_rows(streams, period, options, report), XERO_COLUMNS, "csv", output)
    for invoice_id, why in report.skipped:
        typer.echo(f"left out {invoice_id}: {why}", err=True)
    typer.echo(f"exported {report.invoices} invoices of {period} for Xero "
               f"({report.rows} lines)", err=True)  # fmt: skip


def _check_format(fmt: str, allowed: Sequence[str]) -> None:
    if fmt not in allowed:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(allowed)}",
                                 param_hint="--format")  # fmt: skip


def _write(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], fmt: str, output: Path | None
) -> int:
    """Stream `rows` as CSV (header first) or JSON lines; returns how many were written."""
    count = 0
    with _open_output(output) as stream:
        if fmt == "jsonl":
            for row in rows:
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        else:
            writer = csv.writer(stream)
            writer.writerow(columns)
            cells = operator.itemgetter(*columns)  # faster than csv.DictWriter's key checks
            for row in rows:
                writer.writerow(cells(row))
                count += 1
    return count


@contextmanager
def _open_output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temporary file next to `path` renamed to it once complete."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _progress(label: str, total: int, unit: str) -> Iterator[Callable[[int], None] | None]:
    """A bar on stderr for long exports (`total` of `unit` at least PROGRESS_FROM): called
    with how many were done so far."""
    if total < PROGRESS_FROM[unit]:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn(f"export {label} ({unit})"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:  # fmt: skip
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def _each(
    ids: list[str], read: Callable[[str], list[dict[str, object]]],
    progress: Callable[[int], None] | None,
) -> Iterator[list[dict[str, object]]]:  # fmt: skip
    """Each customer's events in turn, reporting progress every 100 customers."""
    for done, customer_id in enumerate(ids, start=1):
        yield read(customer_id)
        if progress is not None and (done % 100 == 0 or done == len(ids)):
            progress(done)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(export_app, name="export")
