"""`ledger microsoft …`: the partner's credit limit with Microsoft and the check of
Microsoft's rules (SPEC §11); the `ledger show microsoft` table."""

from __future__ import annotations

from datetime import date
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from ledger.bootstrap import build_app
from ledger.cli.options import parse_amount, parse_currency, parse_day, today
from ledger.cli.tables import print_rows
from ledger.config import get_settings
from ledger.domain.money import fmt

microsoft_app = typer.Typer(help="The partner's account with Microsoft: credit limit, alerts.")
limit_app = typer.Typer(help="Microsoft's credit limit for the partner.")
microsoft_app.add_typer(limit_app, name="credit-limit")


@limit_app.command("set")
def credit_limit_set(
    amount: str = typer.Argument(..., help="The credit limit, e.g. 50000.00."),
    currency: str = typer.Option(..., "--currency", help="Microsoft's billing currency."),
    on: str | None = typer.Option(None, "--date", help="In force from (default: today, UTC)."),
) -> None:
    """Record the credit limit Microsoft granted the partner (an event: as-of views know
    the limit in force on any date)."""
    cur = parse_currency(currency)
    value = parse_amount(amount, "AMOUNT", cur, allow_zero=True)
    effective = parse_day(on, "--date") or today()
    from ledger.app.microsoft import set_credit_limit

    if set_credit_limit(build_app(get_settings()), value, cur, effective):
        typer.echo(f"credit limit with Microsoft: {fmt(value, cur)} {cur} from {effective}")
    else:
        typer.echo(f"credit limit {fmt(value, cur)} {cur} from {effective} was already recorded")


@microsoft_app.command("check")
def microsoft_check(
    as_of: str | None = typer.Option(None, "--as-of", help="Default: today (UTC)."),
) -> None:
    """Record Microsoft's alerts due by a date, once each: credit use at 70/85/100 % of the
    limit (MicrosoftCreditThresholdCrossed) and invoices 30/45/60 days past due
    (MicrosoftInvoiceOverdue). Idempotent; the same for a date whenever it runs."""
    from ledger.app.microsoft import check

    day = parse_day(as_of, "--as-of") or today()
    result = check(build_app(get_settings()), day)
    typer.echo(f"recorded {len(result.alerts)} Microsoft alerts as of {day}"
               + (f" ({result.settled} bookings)" if result.settled else ""))  # fmt: skip
    for alert in result.alerts:
        if alert["event_type"] == "MicrosoftCreditThresholdCrossed":
            typer.echo(f"  {alert['currency']}: credit use reached {alert['threshold']}% on "
                       f"{alert['crossed_on']} ({alert['credit_used']} of "
                       f"{alert['credit_limit']})")  # fmt: skip
        else:
            typer.echo(f"  {alert['currency']}: invoice {alert['invoice_number']} "
                       f"{alert['days']} days past due on {alert['overdue_on']} "
                       f"({alert['open']} open)")  # fmt: skip


def print_microsoft(
    rows: list[dict[str, Any]], as_of: date, console: Console | None = None
) -> None:
    """The `ledger show microsoft` table: a row per currency (warnings marked), then the
    invoices of each."""
    console = console or Console(width=200)
    styles = {"warning_70": "yellow", "warning_85": "bold yellow", "at_limit": "bold red",
              "overdue": "yellow", "suspension_risk": "bold yellow",
              "suspendable": "bold red"}  # fmt: skip
    summary = []
    for row in rows:
        line = {k: v for k, v in row.items() if k != "invoices"}
        for field in ("credit_status", "partner_status"):
            style = styles.get(row[field])
            line[field] = Text(row[field], style=style) if style else row[field]
        summary.append(line)
    print_rows(summary, title=f"Microsoft as of {as_of}", console=console)
    for row in rows:
        if row["invoices"]:
            print_rows(row["invoices"], f"Microsoft invoices in {row['currency']}", console)


def register(app: typer.Typer) -> None:
    app.add_typer(microsoft_app, name="microsoft")
