"""Exact money: Decimal amounts checked against the currency's minor unit; never float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import iso4217

from ledger.domain.errors import CurrencyMismatch, InvalidMessage

# ISO 4217 codes and their minor units, from the `iso4217` package (ISO's own table, kept
# current by its maintainers). Codes without a minor unit (gold XAU, SDR XDR, test XTS, "no
# currency" XXX, ...) are not billing currencies and are refused like unknown codes.
_MINOR_UNITS: dict[str, int] = {
    c.code: c.exponent for c in iso4217.Currency if c.exponent is not None
}
# Units of data stored before currency codes were checked against the table: shown with 2
# decimals rather than failing a whole view. Input never gets here (check_currency).
_LEGACY_MINOR_UNIT = 2
# quantity, unit_price and exchange rates (SPEC §2): any precision up to 18 decimal places.
MAX_PLAIN_DECIMALS = 18
# Whole digits of any decimal the ledger takes: 10^15 units is beyond any bill, and it keeps
# every sum well inside Decimal's 28 significant digits.
MAX_INTEGER_DIGITS = 15
# ASCII digits only (no Arabic-Indic or full-width digits), matched with fullmatch.
_DECIMAL_RE = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def minor_unit(currency: str) -> int:
    """Decimals of the currency's minor unit (2 USD, 0 JPY, 3 KWD)."""
    return _MINOR_UNITS.get(currency, _LEGACY_MINOR_UNIT)


def is_currency(currency: object) -> bool:
    """True for an active ISO 4217 code with a minor unit (upper case, as ISO writes it)."""
    return isinstance(currency, str) and currency in _MINOR_UNITS


def check_currency(currency: str, field: str = "currency") -> str:
    """Return `currency` when it is an ISO 4217 code; else InvalidMessage naming `field`."""
    if not is_currency(currency):
        raise InvalidMessage(f"{field}: {currency!r} is not an ISO 4217 code",
                             field=field)  # fmt: skip
    return currency


def decimals_of(number: Decimal) -> int:
    """Digits after the decimal point as written ("1.50" -> 2, "10" -> 0)."""
    # Read off the plain string form: as_tuple() builds a named tuple in Python, three
    # times the cost (a check of every amount of every message).
    text = str(number)
    if "E" not in text and number.is_finite():
        point = text.find(".")
        return 0 if point < 0 else len(text) - point - 1
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def parse_decimal(
    value: object, field: str, *, max_decimals: int | None = MAX_PLAIN_DECIMALS
) -> Decimal:
    """A decimal string such as "125.00" (or an int). Floats are refused: they are not exact.

    Raises InvalidMessage naming `field` and the rule broken: not a decimal at all, more
    than MAX_INTEGER_DIGITS whole digits, or more than `max_decimals` decimals (None: the
    caller checks the decimals, e.g. against a currency).
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage(f"{field}: must be a decimal string, got {value!r}", field=field)
    text = str(value).strip()
    found = _DECIMAL_RE.fullmatch(text)
    if found is None:
        raise InvalidMessage(f"{field}: {value!r} is not a decimal number", field=field)
    whole, fraction = found.group(1), found.group(2) or ""
    digits = len(whole.lstrip("0"))
    if digits > MAX_INTEGER_DIGITS:
        raise InvalidMessage(
            f"{field}: {_clip(text)} has {digits} digits before the decimal point, at most "
            f"{MAX_INTEGER_DIGITS}",
            field=field,
        )
    if max_decimals is not None and len(fraction) > max_decimals:
        raise InvalidMessage(
            f"{field}: {_clip(text)} has {len(fraction)} decimals, at most {max_decimals}",
            field=field,
        )
    return Decimal(text)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_scale(amount: Decimal, currency: str, field: str) -> Decimal:
    """Refuse more decimals than the currency's minor unit (e.g. "1.001" USD)."""
    places, allowed = decimals_of(amount), minor_unit(currency)
    if places > allowed:
        raise InvalidMessage(
            f"{field}: {_clip(str(amount))} has {places} decimals, at most {allowed} for "
            f"{currency}",
            field=field,
        )
    return amount


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit (only where a computation needs it)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_EVEN)


def fmt(amount: Decimal, currency: str) -> str:
    """The wire form of an amount: a decimal string with the currency's decimals."""
    return str(quantize(amount, currency))


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return f"{fmt(self.amount, self.currency)} {self.currency}"
