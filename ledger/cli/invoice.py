"""`ledger invoice run`: issue a billing period's invoices; `ledger invoice void`: cancel one
(SPEC §12) so that the next run reissues its charges."""

from __future__ import annotations

import typer

from ledger.app.reconcile import day_after as _day_after
from ledger.bootstrap import build_app
from ledger.cli.options import (
    parse_day,
    parse_period,
)
from ledger.config import get_settings

invoice_app = typer.Typer(help="Invoice runs.")


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
    from ledger.app.periods import refuse_if_closed  # SPEC §13: a closed period is not billed

    refuse_if_closed(ledger, period, "invoice run")
    issued = ledger.run_invoices(period, invoice_date)
    typer.echo(f"issued {len(issued)} invoices for {period} dated {invoice_date}")


@invoice_app.command("void")
def invoice_void(
    invoice_id: str = typer.Argument(..., help="INV-<customer_id>-<YYYY-MM>[-N]"),
    reason: str = typer.Option(..., "--reason", help="Why it is voided (kept on the event)."),
) -> None:
    """Void an invoice: what settled it becomes unapplied credit again, its charges are
    unbilled again and its journal entry (tax included) is reversed; the next `invoice run`
    of its period issues INV-<customer_id>-<YYYY-MM>-2. Exit 1 for an unknown or void
    invoice or a closed period."""
    if not reason.strip():
        raise typer.BadParameter("must not be blank", param_hint="--reason")
    customer_id = build_app(get_settings()).void_invoice(invoice_id, reason)
    typer.echo(f"voided {invoice_id} of {customer_id}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(invoice_app, name="invoice")
