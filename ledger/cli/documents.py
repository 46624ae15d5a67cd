"""`ledger documents …`: an invoice or a statement of account as the customer reads it
(SPEC §14), to stdout or a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ledger.bootstrap import build_app
from ledger.cli.options import parse_day, today
from ledger.config import get_settings

documents_app = typer.Typer(help="Invoices and statements as customers read them (SPEC §14).")


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")
    app.add_typer(notify_app, name="notify")


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


notify_app = typer.Typer(help="Email issued invoices and notices to customers (SPEC §14).")


@notify_app.callback(invoke_without_command=True)
def notify(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Send what is due, then exit."),
    interval: float = typer.Option(5.0, "--interval", min=0.1, help="Seconds between passes."),
    backoff: float = typer.Option(
        60.0, "--backoff", min=0.0, help="First retry delay (seconds) after a 4xx; doubles."
    ),
) -> None:
    """Send each issued invoice (PDF attached) and each notice by email, exactly once, to the
    customer's `email` (LEDGER_SMTP_URL, LEDGER_MAIL_FROM, LEDGER_PARTNER_PROFILE)."""
    if ctx.invoked_subcommand is not None:
        return
    from ledger.documents.outbox import (
        Mailer,
        SenderBusy,
        check_mail_from,
        claim_sender,
        deliver,
        fill,
        open_outbox,
        parse_smtp_url,
    )
    from ledger.documents.profile import partner_profile
    from ledger.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    target = parse_smtp_url(settings.smtp_url)
    mail_from = check_mail_from(settings.mail_from)
    profile = partner_profile(settings, required=True)
    if settings.templates_dir is not None:
        from ledger.documents.render import environment

        environment(settings.templates_dir)  # a wrong directory fails now, not per message
    app = build_app(settings)
    db = open_outbox(settings)
    try:
        lock = claim_sender(db, settings)  # noqa: F841 (held until the process ends)
    except SenderBusy as error:
        db.close()
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    mailer = Mailer(target)
    try:
        while True:
            added = fill(app, db, mail_from)
            done = deliver(app, db, mailer, profile, mail_from, backoff=backoff,
                           templates_dir=settings.templates_dir)  # fmt: skip
            if once:
                typer.echo(
                    f"notify: {added} new documents; sent {done.sent}, to retry {done.retry}, "
                    f"failed {done.failed}, customers without email {done.no_email}"
                )
                return
            mailer.close()
            import time

            time.sleep(interval)
    finally:
        mailer.close()
        db.close()


@notify_app.command("skip-existing")
def notify_skip_existing() -> None:
    """Never mail the documents issued so far (first use on a ledger with history): later
    runs of `ledger notify` send only documents issued after this command."""
    from ledger.documents.outbox import open_outbox, skip_existing

    settings = get_settings()
    app = build_app(settings)
    db = open_outbox(settings)
    try:
        passed = skip_existing(app, db)
    finally:
        db.close()
    typer.echo(f"notify: {passed} stored events passed over; documents issued from now on "
               "will be mailed")  # fmt: skip


@notify_app.command("status")
def notify_status(
    as_json: bool = typer.Option(False, "--json", help="JSON instead of text."),
) -> None:
    """What is pending, failed, sent but unconfirmed, and which customers have no email."""
    from ledger.documents.outbox import open_outbox, outbox_status

    db = open_outbox(get_settings())
    try:
        found = outbox_status(db)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    counts = found["counts"]
    typer.echo(", ".join(f"{k} {v}" for k, v in counts.items()))
    for title in ("pending", "failed", "unconfirmed"):
        for row in found[title]:
            typer.echo(f"{title}: {row['document_id']} (attempts {row['attempts']}"
                       f"{', ' + row['last_error'] if row['last_error'] else ''})")  # fmt: skip
    for customer in found["customers_without_email"]:
        typer.echo(f"no email: customer {customer} (documents wait until it has one)")
