"""`ledger reconcile` and `ledger remittance …`: paying Microsoft."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from ledger.app.reconcile import ReconReport, import_recon_file, write_csv
from ledger.bootstrap import build_app
from ledger.cli.options import parse_amount, parse_currency, parse_day, parse_period, today
from ledger.cli.tables import print_rows
from ledger.config import get_settings
from ledger.domain.money import fmt
from projections.remittance import payment_status

remittance_app = typer.Typer(help="What the partner owes and pays Microsoft.")


def reconcile_command(
    file: Path = typer.Argument(..., help="Partner Center new-commerce reconciliation CSV."),
    due_date: str | None = typer.Option(
        None, "--due-date", help="Default: invoice date + microsoft_payment_terms_days."
    ),
    invoice_date: str | None = typer.Option(
        None, "--invoice-date", help="Default: the first day after the billing period."
    ),
    period: str | None = typer.Option(
        None, "--period", help="Billing period YYYY-MM (default: from the lines' ChargeStartDate)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The SPEC §7 report as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the line-level report here."),
) -> None:
    """Import Microsoft's invoice reconciliation file, match it with the ledger's charges,
    record the invoice (once per invoice: the same number and lines again, however the file
    is formatted, records nothing) and report the differences."""
    if not file.is_file():
        raise typer.BadParameter(f"{str(file)!r} is not a file", param_hint="FILE")
    due_day = parse_day(due_date, "--due-date")
    invoice_day = parse_day(invoice_date, "--invoice-date")
    chosen_period = parse_period(period) if period is not None else None
    settings = get_settings()
    result = import_recon_file(
        build_app(settings), file.read_bytes(),
        payment_terms_days=settings.microsoft_payment_terms_days,
        billing_period=chosen_period, invoice_date=invoice_day, due_date=due_day,
    )  # fmt: skip
    recon, report = result.recon, result.report
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as handle:
            write_csv(report, handle)
    status = (
        f"recorded Microsoft invoice {recon.invoice_number} for {report.billing_period}: "
        f"{fmt(recon.total, recon.currency)} {recon.currency}, due {result.due_date}"
        if result.recorded
        else f"invoice {recon.invoice_number}: the same lines were already imported; "
        "nothing recorded"
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        typer.echo(status, err=True)
        return
    _print_report(report, len(recon.lines))
    typer.echo(status)


def _print_report(report: ReconReport, line_count: int) -> None:
    doc = report.to_json()
    console = Console(width=200)
    print_rows(
        [{
            "invoice_number": doc["invoice_number"], "billing_period": doc["billing_period"],
            "currency": doc["currency"], "invoice_total": doc["invoice_total"],
            "lines": line_count, "matched": doc["matched"],
            "missing_in_ledger": len(doc["missing_in_ledger"]),
            "missing_on_invoice": len(doc["missing_on_invoice"]),
            "amount_mismatches": len(doc["amount_mismatches"]),
        }],
        title="Reconciliation with Microsoft", console=console,
    )  # fmt: skip
    if doc["missing_in_ledger"]:
        print_rows(doc["missing_in_ledger"], "On the invoice, not in the ledger", console)
    if doc["missing_on_invoice"]:
        charges = [r.charge for r in report.of("missing_on_invoice") if r.charge]
        print_rows(
            [{"charge_id": c.charge_id, "customer_id": c.customer_id,
              "subscription_id": c.subscription_id, "charge_type": c.charge_type,
              "charge_start": c.charge_start.isoformat(), "charge_end": c.charge_end.isoformat(),
              "ledger_cost": fmt(c.cost, report.currency)}
             for c in charges],
            "In the ledger, not on the invoice", console,
        )  # fmt: skip
    if doc["amount_mismatches"]:
        print_rows(doc["amount_mismatches"], "Amount differences", console)


@remittance_app.command("pay")
def remittance_pay(
    amount: str = typer.Option(..., "--amount", help="Decimal amount paid, e.g. 1250.00."),
    reference: str = typer.Option(..., "--reference", help="Bank reference (idempotency key)."),
    currency: str | None = typer.Option(
        None,
        "--currency",
        help="Microsoft's billing currency (with --period: default the "
        "one currency owed for the period).",
    ),
    invoice: str | None = typer.Option(
        None, "--invoice", help="The Microsoft invoice to settle first (else the oldest due)."
    ),
    on: str | None = typer.Option(None, "--date", help="Payment date (default: today, UTC)."),
    period: str | None = typer.Option(
        None, "--period", help="Pay for one billing period YYYY-MM (also before its invoice)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Record even beyond what is due (the rest stays unallocated)."
    ),
) -> None:
    """Record a payment to Microsoft (same reference again: no effect). It settles the named
    invoice, else the oldest due first; the rest stays unallocated and settles the next
    invoice recorded. With --period: a payment for that billing period."""
    value = parse_amount(amount, "--amount")
    if not reference.strip():
        raise typer.BadParameter("must not be empty", param_hint="--reference")
    paid_on = parse_day(on, "--date") or today()
    if period is None:
        code = _currency(currency)
        if code is None:
            raise typer.BadParameter("is required (or give --period)", param_hint="--currency")
        if invoice is not None and not invoice.strip():
            raise typer.BadParameter("must not be empty", param_hint="--invoice")
        _pay_invoices(value, code, reference.strip(), paid_on,
                      invoice.strip() if invoice else None, force)  # fmt: skip
        return
    if invoice is not None:
        raise typer.BadParameter("give --invoice or --period, not both", param_hint="--invoice")
    chosen = parse_period(period)
    from ledger.app.microsoft import pay_period

    remittance, applied = pay_period(
        build_app(get_settings()), chosen, value, reference.strip(), paid_on,
        _currency(currency), force=force,
    )  # fmt: skip
    cur = remittance.currency
    if not applied:
        typer.echo(f"payment {reference!r} was already recorded; nothing changed")
        return
    typer.echo(
        f"recorded payment {reference!r} of {fmt(value, cur)} {cur} to Microsoft for {chosen} "
        f"on {paid_on}; paid so far {fmt(remittance.paid, cur)} {cur}"
    )


def _pay_invoices(amount: Decimal, currency: str, reference: str, paid_on: date,
                  invoice: str | None, force: bool) -> None:  # fmt: skip
    from ledger.app.microsoft import pay

    ledger = build_app(get_settings())
    account, applied = pay(ledger, amount, currency, reference, paid_on,
                           invoice_number=invoice, force=force)  # fmt: skip
    if not applied:
        typer.echo(f"payment {reference!r} was already recorded; nothing changed")
        return
    data = account.payments[reference]
    parts = [f"{a['invoice_number']} {a['amount']}" for a in data["allocations"]]
    typer.echo(
        f"recorded payment {reference!r} of {fmt(amount, currency)} {currency} to Microsoft "
        f"on {paid_on}: applied to {', '.join(parts) or 'no invoice'}; "
        f"{data['unallocated']} {currency} unallocated"
    )


def _currency(text: str | None) -> str | None:
    """--currency when given; None: the period's currency."""
    return None if text is None else parse_currency(text)


def remittance_table(rows: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    """The `ledger show remittance` table: the SPEC rows plus a `status` marker (overdue,
    due within 7 days, …). Only for the terminal: the JSON rows stay the SPEC fields."""
    styles = {"OVERDUE": "bold red", "due": "bold yellow"}
    table = []
    for row in rows:
        status = payment_status(row, as_of)
        style = styles.get(status.split(" ", 1)[0])
        table.append(dict(row, status=Text(status, style=style) if style else status))
    return table


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `ledger` app."""
    app.command("reconcile")(reconcile_command)
    app.add_typer(remittance_app, name="remittance")
