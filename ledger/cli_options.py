"""Option parsing shared by the CLI modules: dates and billing periods, with usage errors
(exit 2) that name the option."""

from __future__ import annotations

from datetime import UTC, date, datetime

import typer


def today() -> date:
    return datetime.now(UTC).date()


# Dates a command accepts (as ingest accepts business times: ledger.messages MIN/MAX_YEAR):
# far from datetime's limits, so a due date (+ terms) or the day after a period never overflows.
MIN_DAY, MAX_DAY = date(1900, 1, 1), date(9000, 12, 31)


def _in_range(day: date, value: str, option: str) -> date:
    if not MIN_DAY <= day <= MAX_DAY:
        raise typer.BadParameter(
            f"{value!r} is out of range ({MIN_DAY} to {MAX_DAY})", param_hint=option
        )
    return day


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None
    return _in_range(day, value, option)


def parse_period(value: str) -> str:
    try:
        first = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a period (YYYY-MM)", param_hint="--period"
        ) from None
    _in_range(first, value, "--period")
    return value
