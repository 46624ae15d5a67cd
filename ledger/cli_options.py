"""Option parsing shared by the CLI modules: dates and billing periods, with usage errors
(exit 2) that name the option."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import typer

from ledger.domain.ids import normalize_id

# Only these spellings, ASCII digits, the whole value: date.fromisoformat would also take
# "20260115" and "2026-W03-4", strptime("%Y-%m") takes "2026-1" and Arabic-Indic digits.
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_PERIOD_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)


def today() -> date:
    return datetime.now(UTC).date()


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        if not _DAY_RE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def parse_period(value: str) -> str:
    if not _PERIOD_RE.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not a period (YYYY-MM, month 01-12)", param_hint="--period"
        )
    return value


def parse_customer(value: str | None) -> str | None:
    """A `--customer` option: a GUID in either case names the same customer (SPEC §2)."""
    return None if value is None else normalize_id(value.strip())
