"""`ledger collections run|preview|schedule`: dunning, suspension and reinstatement."""

from __future__ import annotations

from datetime import date

import typer

from ledger.bootstrap import build_app
from ledger.cli.options import (
    parse_day,
    today,
)
from ledger.config import get_settings

collections_app = typer.Typer(help="Dunning, suspension and reinstatement.")


@collections_app.command("run")
def collections_run(
    as_of: str | None = typer.Option(None, "--as-of", help="Default: today (UTC)."),
) -> None:
    """Apply every customer's collections policy as of a date. Safe to re-run."""
    _collections(parse_day(as_of, "--as-of") or today(), dry_run=False)


@collections_app.command("preview")
def collections_preview(as_of: str | None = typer.Option(None, "--as-of")) -> None:
    """What a run would do, without doing it."""
    _collections(parse_day(as_of, "--as-of") or today(), dry_run=True)


def _check_at(value: str) -> str:
    from ledger.app.schedule import parse_at

    try:
        parse_at(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--at") from None
    return value


@collections_app.command("schedule")
def collections_schedule(
    at: str = typer.Option(
        ..., "--at", callback=_check_at, help="Time of day to run, HH:MM in UTC (e.g. 06:05)."
    ),
    once_now: bool = typer.Option(
        False, "--once-now", help="Also run once right away at start (catch up after downtime)."
    ),
) -> None:
    """Service mode: run `collections run` for today (UTC) every day at --at, until
    SIGTERM/SIGINT. Each run is logged (JSON); a failed run is retried every minute for that
    day. Runs are idempotent and catch up on every step due, so a missed or repeated run is
    harmless. The cron equivalent: `5 6 * * * ledger collections run` (cron in UTC)."""
    from consumers.kafka_support import StopFlag
    from ledger.app.schedule import CollectionsSchedule, parse_at

    ledger = build_app(get_settings())
    from ledger.app.microsoft import collections_and_microsoft

    schedule = CollectionsSchedule(
        lambda as_of: collections_and_microsoft(ledger, as_of), parse_at(at), StopFlag().install()
    )
    schedule.loop(once_now=once_now)


def _collections(as_of: date, dry_run: bool) -> None:
    from ledger.app.collections import CollectionsIncomplete

    ledger = build_app(get_settings())
    from ledger.app.microsoft import collections_and_microsoft  # the Microsoft check runs too

    incomplete: CollectionsIncomplete | None = None
    try:
        fired = collections_and_microsoft(ledger, as_of, dry_run=dry_run)
    except CollectionsIncomplete as error:
        # The others were done: say what was, then name every customer left out (exit 1).
        incomplete, fired = error, error.fired
    verb = "would fire" if dry_run else "fired"
    typer.echo(f"{verb} {len(fired)} events as of {as_of}")
    for item in fired:
        what = item.get("action") or item["event_type"]
        target = item.get("subscription_id") or item.get("invoice_id")
        typer.echo(f"  {item['customer_id']}: {what} {target}")
    if incomplete is not None:
        for skipped in incomplete.skipped:
            typer.echo(f"error: {skipped.message}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(collections_app, name="collections")
