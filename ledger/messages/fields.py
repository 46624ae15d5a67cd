"""The field types of SPEC §3 messages: limits, the ASCII patterns, and one validator per
kind of field (ids, currency, timestamps, dates, decimals), as Annotated pydantic types."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)
from pydantic_core import PydanticCustomError

from ledger.domain.errors import InvalidMessage
from ledger.domain.ids import normalize_id, normalize_invoice_id
from ledger.domain.money import (
    MAX_INTEGER_DIGITS,
    MAX_PLAIN_DECIMALS,
    check_currency,
    parse_decimal,
)

MAX_MESSAGE_BYTES = 1_048_576
ENVELOPE_FIELDS = frozenset({"message_id", "type", "customer_id", "occurred_at"})

MAX_ID_CHARS = 128
MAX_QUANTITY_DECIMALS = MAX_PLAIN_DECIMALS
MAX_PRICE_DECIMALS = MAX_PLAIN_DECIMALS
MAX_MINUTES = 2_147_483_647

# Every pattern is ASCII (re.ASCII, explicit [0-9]: a Unicode \d takes "٢٠٢٦") and is used
# with fullmatch (a `$` would accept a final newline: "2026-01\n").
_CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)
_NO_OFFSET_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?", re.ASCII
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_PERIOD_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
# A decimal string that parse_decimal takes as is: at most MAX_INTEGER_DIGITS whole digits
# after leading zeros, no spaces (the fast path of _decimal; anything else takes the long way,
# which names what is wrong).
_PLAIN_DECIMAL_RE = re.compile(rf"-?0*[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.([0-9]+))?", re.ASCII)
# Control characters (C0, DEL, C1): never part of an id ("CH-1\n" is not a second charge).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# --------------------------------------------------------------------------- field errors


def _fail(message: str) -> PydanticCustomError:
    """A field error whose text is used as is (the field name is prefixed later)."""
    return PydanticCustomError("ledger", "{detail}", {"detail": message})


def _rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field error raised by a model validator: it carries the field it is about."""
    return PydanticCustomError("ledger_rule", "{detail}", {"detail": message, "field": field})


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _detail(exc: InvalidMessage, field: str) -> str:
    """The text of a money helper's InvalidMessage ("field: detail") without its field."""
    prefix = f"{field}: "
    return exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message


def _unwrap(exc: InvalidMessage, field: str) -> PydanticCustomError:
    """Re-raise a money helper's InvalidMessage as a pydantic field error."""
    return _fail(_detail(exc, field))


# --------------------------------------------------------------------------- field types


def _unicode(value: str) -> str:
    if value.isascii():  # no surrogate can be there (the common case, checked in C)
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("must be valid Unicode text (lone surrogate)") from None
    return value


def _required_text(value: str) -> str:
    _unicode(value)
    if not value.strip():
        raise _fail("must not be empty")
    return value


def _business_id(value: str) -> str:
    # The common case in C: printable ASCII (no surrogate, no control character), not blank.
    if len(value) <= MAX_ID_CHARS and value.isascii() and value.isprintable() and value.strip():
        return value
    _required_text(value)
    if len(value) > MAX_ID_CHARS:
        raise _fail(f"must be at most {MAX_ID_CHARS} characters")
    _no_control(value)
    return value


def _no_control(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise _fail(f"{_short(value)} must not contain control characters (newline, tab, ...)")
    return value


def _customer_id(value: str) -> str:
    if not _CUSTOMER_ID_RE.fullmatch(value):
        raise _fail(f"{_short(value)} must be 1-64 characters of [A-Za-z0-9._:-]")
    return normalize_id(value)


def _invoice_ref(value: str) -> str:
    """An `invoice_id` a message names: `INV-<GUID>-…` in either case is one invoice."""
    return normalize_invoice_id(_business_id(value))


def _partner_center_id(value: str) -> str:
    """A business id that Partner Center writes as a GUID (subscription_id)."""
    return normalize_id(_business_id(value))


def _currency(value: object) -> object:
    if isinstance(value, str):
        try:
            check_currency(value, "currency")
        except InvalidMessage as exc:
            raise _unwrap(exc, "currency") from None
    return value


def _email(value: str) -> str:
    _unicode(value)
    if not _EMAIL_RE.fullmatch(value):
        raise _fail(f"{_short(value)} is not an email address")
    return value


def _billing_period(value: object) -> object:
    if isinstance(value, str) and not _PERIOD_RE.fullmatch(value):
        raise _fail(f"{_short(value)} must be YYYY-MM with a month 01-12")
    return value


def _timestamp(value: object) -> object:
    if type(value) is str and (known := _TIMESTAMPS.get(value)) is not None:
        return known
    parsed = _parse_timestamp(value)
    if type(value) is str:
        _remember(_TIMESTAMPS, value, parsed)
    return parsed


def _parse_timestamp(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _fail("must be a timestamp with an offset (naive timestamps are refused)")
        return _in_range(value)
    if not isinstance(value, str):
        raise _fail(f"must be an RFC 3339 timestamp string, got {_short(value)}")
    if not _RFC3339_RE.fullmatch(value):
        if _NO_OFFSET_RE.fullmatch(value):
            raise _fail(f"{_short(value)} has no offset (use Z or +HH:MM)")
        raise _fail(f"{_short(value)} is not an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise _fail(f"{_short(value)} is not a valid timestamp ({exc})") from None
    return _in_range(parsed)


# Business time the ledger accepts (UTC years): far enough from datetime's limits that dates
# derived from it (UTC day, due date = day + terms, periods) can never overflow.
MIN_YEAR, MAX_YEAR = 1900, 9000


def _in_range(value: datetime) -> datetime:
    try:
        year = value.astimezone(UTC).year
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in UTC year 10000
        year = value.year + (1 if value.year >= MAX_YEAR else -1)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _fail(f"{value.isoformat()} is out of range (UTC years {MIN_YEAR} to {MAX_YEAR})")
    return value


# Valid texts already read, and what they read as (immutable values): the timestamps and days
# of a batch repeat (one billing file has one occurred_at and a few charge periods).
_TIMESTAMPS: dict[str, object] = {}
_DAYS: dict[str, object] = {}
_MAX_REMEMBERED = 4096


def _remember(memo: dict[str, object], text: str, value: object) -> None:
    if len(memo) >= _MAX_REMEMBERED:
        memo.clear()
    memo[text] = value


def _date(value: object) -> object:
    if type(value) is str:
        if (known := _DAYS.get(value)) is not None:
            return known
        if _DATE_RE.fullmatch(value):
            try:
                day = date.fromisoformat(value)
            except ValueError as exc:
                raise _fail(f"{_short(value)} is not a valid date ({exc})") from None
            _remember(_DAYS, value, day)
            return day
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise _fail(f"must be a date YYYY-MM-DD, got {_short(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{_short(value)} is not a valid date ({exc})") from None


def _decimal(*, allow_int: bool, max_decimals: int | None = None) -> Callable[[object], object]:
    """A BeforeValidator reading a decimal string (or an int when allowed) into a Decimal.

    `max_decimals` None: money, whose decimals the model checks against its currency."""

    def parse(value: object) -> object:
        if type(value) is str and (found := _PLAIN_DECIMAL_RE.fullmatch(value)) is not None:
            # The common case, valid as written: no helper, no second look at the digits.
            fraction = found.group(1)
            if max_decimals is None or fraction is None or len(fraction) <= max_decimals:
                number = Decimal(value)
                return number.copy_abs() if number.is_zero() else number  # "-0.00" is zero
        if isinstance(value, Decimal):
            number = value
            if not number.is_finite():
                raise _fail("must be a finite decimal")
        else:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise _fail(f"must be a decimal string, got {_short(value)}")
            if isinstance(value, int) and not allow_int:
                raise _fail(f"must be a decimal string, got {_short(value)}")
            try:
                number = parse_decimal(value, "value", max_decimals=max_decimals)
            except InvalidMessage as exc:
                raise _unwrap(exc, "value") from None
            if isinstance(value, str) and value != value.strip():
                raise _fail(f"{_short(value)} must not have surrounding spaces")
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if max_decimals is not None and -exponent > max_decimals:
            raise _fail(f"{_short(str(number))} has {-exponent} decimals, at most {max_decimals}")
        if number.is_zero():
            number = number.copy_abs()  # "-0.00" is zero
        return number

    return parse


def _tax_rate(value: object) -> object:
    """A tax rate in percent: a decimal string 0..100 (SPEC §12), e.g. "20" or "8.875"."""
    number = _decimal(allow_int=False, max_decimals=MAX_PLAIN_DECIMALS)(value)
    assert isinstance(number, Decimal)
    if not Decimal(0) <= number <= Decimal(100):
        raise _fail(f"{_short(str(number))} is not a percentage between 0 and 100")
    return number


def _country(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code in upper case ("IE", "US")."""
    if (
        not re.fullmatch(r"[A-Z]{2}", value, re.ASCII)
        or pycountry.countries.get(alpha_2=value) is None
    ):
        raise _fail(f"{_short(value)} is not an ISO 3166-1 alpha-2 country code (e.g. IE, US)")
    return value


BusinessId = Annotated[str, AfterValidator(_business_id)]
TaxRate = Annotated[Decimal, BeforeValidator(_tax_rate)]
Country = Annotated[str, AfterValidator(_country)]
RequiredText = Annotated[str, AfterValidator(_required_text)]
Text = Annotated[str, AfterValidator(_unicode)]
CustomerId = Annotated[str, AfterValidator(_customer_id)]
PartnerCenterId = Annotated[str, AfterValidator(_partner_center_id)]
InvoiceRef = Annotated[str, AfterValidator(_invoice_ref)]
Currency = Annotated[str, BeforeValidator(_currency)]
Email = Annotated[str, AfterValidator(_email)]
BillingPeriod = Annotated[str, BeforeValidator(_billing_period)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Day = Annotated[date, BeforeValidator(_date)]
MoneyAmount = Annotated[Decimal, BeforeValidator(_decimal(allow_int=False))]
UnitPrice = Annotated[
    Decimal, BeforeValidator(_decimal(allow_int=False, max_decimals=MAX_PRICE_DECIMALS))
]
Quantity = Annotated[
    Decimal, BeforeValidator(_decimal(allow_int=True, max_decimals=MAX_QUANTITY_DECIMALS))
]
PaymentTerms = Annotated[int, Field(ge=0, le=365)]
Minutes = Annotated[int, Field(ge=0, le=MAX_MINUTES)]

ChargeType = Literal[
    "new", "renew", "cycle", "usage", "one_time", "support", "cancel_refund",
    # Microsoft's new-commerce lines (SPEC §3, §10)
    "add_quantity", "remove_quantity", "convert", "customer_credit",
]  # fmt: skip
# Charge types whose amount and cost may be negative (Microsoft credits them).
CREDIT_CHARGE_TYPES = frozenset({"cancel_refund", "remove_quantity", "customer_credit", "convert"})
FxRate = Annotated[Decimal, BeforeValidator(_decimal(allow_int=False, max_decimals=18))]
PaymentMethod = Literal["card", "bank_transfer", "direct_debit", "check", "other"]
ReversalReason = Literal["chargeback", "returned", "error"]
Channel = Literal["email", "phone", "portal", "chat"]
Category = Literal["billing", "technical", "commercial", "other"]
Severity = Literal["a", "b", "c"]
Vehicle = Literal[
    "microsoft_commercial", "microsoft_premier", "microsoft_advanced", "microsoft_cloud_support"
]
