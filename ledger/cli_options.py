"""Option parsing shared by the CLI modules: dates and billing periods, with usage errors
(exit 2) that name the option."""

from __future__ import annotations

from datetime import UTC, date, datetime

import typer


def today() -> date:
    return datetime.now(UTC).date()


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def parse_period(value: str) -> str:
    try:
        datetime.strptime(value, "%Y-%m")
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a period (YYYY-MM)", param_hint="--period"
        ) from None
    return value
