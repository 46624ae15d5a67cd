"""`ledger show VIEW`: the SPEC §6 views as a table, or JSON rows with --json."""

from __future__ import annotations

import json

import typer

from ledger.bootstrap import build_app
from ledger.cli.options import (
    parse_customer,
    parse_day,
    parse_instant,
    today,
)
from ledger.cli.tables import print_rows
from ledger.config import get_settings

VIEW_NAMES = "balances|delinquency|remittance|support|trial-balance|microsoft|margin|invoices|tax"


def show(
    view: str = typer.Argument(..., help=VIEW_NAMES),
    customer: str | None = typer.Option(None, "--customer"),
    as_of: str | None = typer.Option(None, "--as-of", help="Date; a past date replays history."),
    as_json: bool = typer.Option(False, "--json"),
    status: str | None = typer.Option(None, help="support: open, escalated or resolved."),
    period: str | None = typer.Option(None, help="remittance, margin, tax: one billing period."),
    as_recorded_at: str | None = typer.Option(
        None,
        "--as-recorded-at",
        help="Instant (ISO 8601, UTC if no offset): only events "
        "recorded by then, as the ledger showed it (as of that day unless --as-of).",
    ),
) -> None:
    """Print a view of SPEC §6 as a table, or as JSON rows with --json."""
    from ledger.app.views import VIEWS
    from ledger.store.readmodels import view_rows

    if view not in VIEWS:
        raise typer.BadParameter(f"{view!r} is not one of {VIEW_NAMES}", param_hint="VIEW")
    day = parse_day(as_of, "--as-of")
    recorded_at = parse_instant(as_recorded_at, "--as-recorded-at")
    if day is None and recorded_at is not None:
        day = recorded_at.date()  # what the ledger showed then, it showed as of that day
    settings = get_settings()
    historical = as_of is not None and day is not None and day < today()
    rows = view_rows(
        build_app(settings), settings, view, day or today(), historical=historical,
        recorded_at=recorded_at, customer_id=parse_customer(customer), status=status,
        period=period,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        if view == "microsoft":  # a row per currency, then its invoices
            from ledger.cli.microsoft import print_microsoft

            print_microsoft(rows, day or today())
            return
        if view == "remittance":  # the table marks periods overdue or due within 7 days
            from ledger.cli.remittance import remittance_table

            rows = remittance_table(rows, day or today())
        print_rows(rows, title=f"{view} as of {day or today()}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.command()(show)
