"""`ledger documents …`: an invoice or a statement of account as the customer reads it
(SPEC §14), to stdout or a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ledger.bootstrap import build_app
from ledger.cli_options import parse_day, today
from ledger.config import get_settings

documents_app = typer.Typer(help="Invoices and statements as customers read them (SPEC §14).")


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        if sys.stdout.isatty() and data.startswith(b"%PDF"):
            raise typer.BadParameter(
                "a PDF is not shown on a terminal: pass -o FILE", param_hint="-o"
            )
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if output.is_dir() or not output.parent.is_dir():
        raise typer.BadParameter(
            f"{str(output)!r}: not a file in an existing directory", param_hint="-o"
        )
    output.write_bytes(data)
    typer.echo(f"wrote {output}", err=True)


def _check_format(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(allowed)}", param_hint="--format"
        )
    return fmt


@documents_app.command("invoice")
def invoice(
    invoice_id: str = typer.Argument(..., help="The invoice id, e.g. INV-tenant-001-2026-01."),
    fmt: str = typer.Option("pdf", "--format", help="pdf or html."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File to write."),
) -> None:
    """The invoice as the customer reads it: lines, totals, what is due and how to pay."""
    _check_format(fmt, ("pdf", "html"))
    from ledger.documents.model import DocumentNotFound
    from ledger.documents.profile import partner_profile
    from ledger.documents.render import render_html, render_pdf
    from ledger.documents.service import find_invoice

    settings = get_settings()
    profile = partner_profile(settings)
    try:
        doc = find_invoice(build_app(settings), invoice_id)
    except DocumentNotFound as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    data = (
        render_pdf(doc, profile)
        if fmt == "pdf"
        else render_html(doc, profile, settings.templates_dir).encode()
    )
    _write(data, output)


@documents_app.command("statement")
def statement(
    customer_id: str = typer.Argument(..., help="The customer's id."),
    start: str | None = typer.Option(None, "--from", help="First day (default: registration)."),
    end: str | None = typer.Option(None, "--to", help="Last day (default: today, UTC)."),
    fmt: str = typer.Option("pdf", "--format", help="pdf, html or json."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File to write."),
) -> None:
    """Statement of account: opening balance, every movement with the running balance,
    closing balance (the balances view's `balance` on --to) and aging."""
    _check_format(fmt, ("pdf", "html", "json"))
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    from ledger.documents.model import DocumentNotFound
    from ledger.documents.profile import partner_profile
    from ledger.documents.render import render_html, render_pdf
    from ledger.documents.service import default_period, find_statement

    settings = get_settings()
    profile = partner_profile(settings)
    app = build_app(settings)
    try:
        since, until = default_period(app, customer_id, today())
        first, last = first or since, last or until
        if first > last:
            raise typer.BadParameter(f"{first} is after --to {last}", param_hint="--from")
        doc = find_statement(app, customer_id, first, last)
    except DocumentNotFound as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    if fmt == "json":
        data = (json.dumps(doc.to_json(), indent=2) + "\n").encode()
    elif fmt == "pdf":
        data = render_pdf(doc, profile)
    else:
        data = render_html(doc, profile, settings.templates_dir).encode()
    _write(data, output)
