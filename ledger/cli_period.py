"""`ledger period close|list` (SPEC §13). Registered on the main app by ledger/cli.py."""

from __future__ import annotations

import json

import typer

period_app = typer.Typer(help="Closed accounting periods.")


def register(app: typer.Typer) -> None:
    """Add the `period` group to the `ledger` app."""
    app.add_typer(period_app, name="period")


@period_app.command("close")
def period_close(
    period: str = typer.Argument(..., help="The month to close, YYYY-MM."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the event)."),
) -> None:
    """Close a month: records `PeriodClosed`. Later entries dated in it post on the first day
    of the first open period; its trial balance never changes; invoice runs for it are
    refused. Closing a closed period changes nothing (exit 0)."""
    from ledger.bootstrap import build_app
    from ledger.cli_options import parse_period
    from ledger.config import check_settings, get_settings
    from ledger.periods import close_period

    period = parse_period(period)
    if close_period(build_app(check_settings(get_settings())), period, reason):
        typer.echo(f"closed {period}")
    else:
        typer.echo(f"{period} was closed already")


@period_app.command("list")
def period_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The closed periods: `period`, `closed_at` (UTC), `reason`."""
    from ledger.bootstrap import build_app
    from ledger.config import check_settings, get_settings
    from ledger.periods import closed_periods
    from ledger.tables import print_rows

    rows = closed_periods(build_app(check_settings(get_settings())))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_rows(rows, title="closed periods")
