"""`ledger period close|list`: closed accounting periods (SPEC §13)."""

from __future__ import annotations

import json

import typer

period_app = typer.Typer(help="Closed accounting periods.")


@period_app.command("close")
def period_close(
    period: str = typer.Argument(..., help="The month to close, YYYY-MM."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the event)."),
) -> None:
    """Close a month: records `PeriodClosed`. Later entries dated in it post on the first day
    of the first open period; its trial balance never changes; invoice runs for it are
    refused. Closing a closed period changes nothing (exit 0)."""
    from ledger.app.periods import close_period
    from ledger.bootstrap import build_app
    from ledger.cli.options import parse_period
    from ledger.config import check_settings, get_settings

    period = parse_period(period)
    if close_period(build_app(check_settings(get_settings())), period, reason):
        typer.echo(f"closed {period}")
    else:
        typer.echo(f"{period} was closed already")


@period_app.command("list")
def period_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The closed periods: `period`, `closed_at` (UTC), `reason`."""
    from ledger.app.periods import closed_periods
    from ledger.bootstrap import build_app
    from ledger.cli.tables import print_rows
    from ledger.config import check_settings, get_settings

    rows = closed_periods(build_app(check_settings(get_settings())))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_rows(rows, title="closed periods")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(period_app, name="period")
