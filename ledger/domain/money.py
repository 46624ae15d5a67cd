"""Exact money: Decimal amounts checked against the currency's minor unit; never float."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from ledger.domain.errors import CurrencyMismatch, InvalidMessage

# ISO 4217 exponents that differ from 2. Every other well-formed code has 2 decimals.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DECIMAL_RE = re.compile(r"^-?\d{1,15}(\.\d{1,8})?$")


def minor_unit(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def check_currency(currency: str, field: str = "currency") -> str:
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        raise InvalidMessage(f"{field}: {currency!r} is not an ISO 4217 code", field=field)
    return currency


def parse_decimal(value: object, field: str) -> Decimal:
    """A decimal string such as "125.00". Floats are refused: they are not exact."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessage(f"{field}: must be a decimal string, got {value!r}", field=field)
    text = str(value).strip()
    if not _DECIMAL_RE.match(text):
        raise InvalidMessage(f"{field}: {value!r} is not a decimal number", field=field)
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InvalidMessage(f"{field}: {value!r} is not a decimal number", field=field) from exc


def check_scale(amount: Decimal, currency: str, field: str) -> Decimal:
    """Refuse more decimals than the currency has (e.g. "1.001" USD)."""
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > minor_unit(currency):
        raise InvalidMessage(
            f"{field}: {amount} has more decimals than {currency} allows ({minor_unit(currency)})",
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
