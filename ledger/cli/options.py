"""What the CLI modules share: option parsing (dates, billing periods, customers, amounts and
currencies, with usage errors (exit 2) that name the option) and the one-line failures (exit 1)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NoReturn

import typer

from ledger.domain.errors import InvalidMessage
from ledger.domain.ids import normalize_id
from ledger.domain.money import check_currency, check_scale, parse_decimal

# Only these spellings, ASCII digits, the whole value: date.fromisoformat would also take
# "20260115" and "2026-W03-4", strptime("%Y-%m") takes "2026-1" and Arabic-Indic digits.
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_PERIOD_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)


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


_INSTANT_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?", re.ASCII,
)  # fmt: skip


def parse_instant(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 instant (YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|±HH:MM]; no offset = UTC) as an
    aware UTC datetime. A bare date is refused: which instant of the day would be a guess."""
    if value is None:
        return None
    try:
        if not _INSTANT_RE.fullmatch(value):
            raise ValueError(value)
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else (
            instant.astimezone(UTC))  # fmt: skip
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"{value!r} is not an instant (e.g. 2025-02-10T23:59:59Z)", param_hint=option
        ) from None
    _in_range(instant.date(), value, option)
    return instant


def parse_day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        if not _DAY_RE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None
    return _in_range(day, value, option)


def parse_period(value: str) -> str:
    if not _PERIOD_RE.fullmatch(value):
        raise typer.BadParameter(
            f"{value!r} is not a period (YYYY-MM, month 01-12)", param_hint="--period"
        )
    _in_range(date(int(value[:4]), int(value[5:7]), 1), value, "--period")
    return value


def parse_customer(value: str | None) -> str | None:
    """A `--customer` option: a GUID in either case names the same customer (SPEC §2)."""
    return None if value is None else normalize_id(value.strip())


_CURRENCY_RE = re.compile(r"[A-Z]{3}", re.ASCII)


def parse_currency(text: str, option: str = "--currency") -> str:
    """A currency option: a real ISO 4217 code (SPEC §2), upper-cased."""
    code = text.strip().upper()
    if not _CURRENCY_RE.fullmatch(code):
        raise typer.BadParameter(f"{text!r} is not a currency code (e.g. USD)", param_hint=option)
    try:
        return check_currency(code, option)
    except InvalidMessage as exc:
        raise typer.BadParameter(exc.message.removeprefix(f"{option}: "),
                                 param_hint=option) from None  # fmt: skip


def parse_amount(
    text: str, option: str, currency: str | None = None, *, allow_zero: bool = False
) -> Decimal:
    """An amount option, read as message amounts are (ASCII digits, no exponent, no NaN, at
    most 15 whole digits; Decimal() alone takes "1e3", "NaN" and Arabic-Indic digits);
    > 0 (>= 0 with allow_zero); at most the currency's minor-unit decimals when it is given."""
    try:
        value = parse_decimal(text, option, max_decimals=None)
        if value < 0 or (value == 0 and not allow_zero):
            raise InvalidMessage(f"{option}: {text!r} must be {'>=' if allow_zero else '>'} 0")
        if currency is not None:
            check_scale(value, currency, option)
    except InvalidMessage as exc:
        raise typer.BadParameter(exc.message.removeprefix(f"{option}: "),
                                 param_hint=option) from None  # fmt: skip
    return value


class CliError(Exception):
    """A failure to report in one line on stderr, exit 1."""


# SystemExit, not typer.Exit/BadParameter: those are turned into exit codes by the entry
# point's handlers, which a command group should not depend on for its documented 1 and 2.
def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(1)


def usage_error(message: str) -> NoReturn:
    typer.echo(f"usage error: {message}", err=True)
    sys.exit(2)
