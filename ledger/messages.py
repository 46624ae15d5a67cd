"""The ingest messages of SPEC §3: one frozen pydantic model per `type`, and the parser.

`parse_message(raw, key=...)` turns the bytes of one Kafka value (or one JSONL line) into a
`Message`, or raises a `LedgerError` whose `code` is the dead-letter code and whose
`message` names the offending field in one human-readable line.

Choices where the SPEC is silent (the contract others rely on):

- Unknown extra fields are IGNORED, never an error: producers may add fields of a future
  schema version before the ledger knows them (forward compatibility). They are not part of
  `to_payload()` nor of `fingerprint()`, so they never cause a `conflict`.
- Money (`amount`, `unit_price`, `cost`) comes as a decimal STRING only; a JSON number (int
  or float) is refused: a float is not exact, and accepting ints would make `10` and `"10"`
  two spellings of the same contract. `quantity` also accepts a JSON integer (seat counts
  are naturally integers and an int is exact), but never a float.
- `amount` and `cost` must fit the currency's ISO 4217 minor unit (`"10.001"` USD is
  invalid); `unit_price` and `quantity` may carry up to 18 decimals (SPEC §2: Microsoft's
  usage prices carry 13). Every decimal has at most 15 digits before the point. An error
  names the rule broken ("has 19 decimals, at most 18"). Digits are ASCII only.
- `currency` is an ISO 4217 code from ISO's table (the `iso4217` package), upper case.
- Partner Center ids written as GUIDs (`customer_id`, `subscription_id`) are kept in lower
  case (SPEC §2), so either spelling is the same customer; other ids are kept as given. A
  record key is compared with `customer_id` the same way.
- Every pattern is ASCII-only and must match the whole value (a trailing newline is not
  ignored).
- Charge signs: `amount` and `cost` are >= 0, except for `cancel_refund` where both are
  <= 0 (the partner is refunded by Microsoft too) and the other credit-bearing new-commerce
  types `remove_quantity`, `customer_credit`, `convert` (either sign); `unit_price` is always
  >= 0; `quantity` is >= 0 except for those credit-bearing types.
- `cost_currency` (default `currency`) is Microsoft's currency of `cost`, whose scale is
  checked against it; `cost_fx_rate` (units of `currency` per unit of `cost_currency`, > 0,
  up to 18 decimals) is required when the two differ. `amount` is not checked against
  `quantity * unit_price` (prorations and discounts make them differ).
- Negative zero (`"-0.00"`) is read as zero.
- Required text (ids, names, `description`, `reference`, `reason`, `subject`,
  `resolution`) must contain a non-blank character; it is kept exactly as given (not
  stripped). `note` may be empty. Business ids are at most 128 characters
  and hold no control characters (a "CH-1\\n" is not a second charge).
- An optional field given as JSON `null` is the same as absent; `customer_updated` must
  carry at least one non-null optional field.
- `email`, when given, must look like `local@domain` (no further validation).
- Timestamps: RFC 3339 (`T` separator, `Z` or `±HH:MM` offset, optional fraction); the
  offset given is kept on the aware `datetime`. Dates: `YYYY-MM-DD` only.
- `payment_terms_days` is a JSON integer 0..365 (default 30), `minutes` a JSON integer
  0..2_147_483_647; `true`/`false` are never integers and `"yes"`/`1` never booleans.
- The JSON text must be strict: no `NaN`/`Infinity`, no duplicate keys, no UTF-8 BOM
  (each is `malformed_json`).
- `key`: `None` means "no record key, not checked"; any other key (also empty) must equal
  `customer_id`, else `key_mismatch`. The field errors of a message are reported before a
  key mismatch.
- `fingerprint()` is the sha256 of the canonical JSON of everything but `message_id`, with
  decimals normalised (`"10.0"` == `"10.00"`), timestamps in UTC and defaults applied, so
  the same fact re-sent under a new message id has the same fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from ledger.domain.errors import (
    InvalidMessage,
    KeyMismatch,
    LedgerError,
    MalformedJson,
    MessageTooLarge,
    UnknownType,
)
from ledger.domain.ids import normalize_id, normalize_invoice_id
from ledger.domain.money import MAX_PLAIN_DECIMALS, check_currency, check_scale, parse_decimal

__all__ = [
    "CREDIT_CHARGE_TYPES",
    "ENVELOPE_FIELDS",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "ChargeMsg",
    "CreditNoteMsg",
    "CustomerRegisteredMsg",
    "CustomerUpdatedMsg",
    "Envelope",
    "Message",
    "PaymentMsg",
    "PaymentReversedMsg",
    "RefundMsg",
    "SupportEscalatedMsg",
    "SupportInteractionMsg",
    "SupportTicketOpenedMsg",
    "SupportTicketResolvedMsg",
    "parse_message",
    "parse_object",
]

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


def _date(value: object) -> object:
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


BusinessId = Annotated[str, AfterValidator(_business_id)]
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


# --------------------------------------------------------------------------- JSON forms


# Field values that are already their JSON form (most fields): the fast path of _wire and
# _canonical, which run for every field of every message.
_AS_IS = frozenset({str, int, bool, type(None)})


def _wire(value: object) -> object:
    """JSON-safe form of a field value: decimals as strings as given, dates ISO."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _canonical(value: object) -> object:
    """Canonical form for fingerprints: decimals normalised, timestamps in UTC."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return "0" if value.is_zero() else format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return _wire(value)


# --------------------------------------------------------------------------- models


class Envelope(BaseModel):
    """Fields every message carries. Unknown extra fields are ignored (forward compat)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    message_id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_unicode)]
    type: str
    customer_id: CustomerId
    occurred_at: Timestamp

    # The field holding this type's business id (None: the type has none).
    _business_id_field: ClassVar[str | None] = None
    # Optional fields added after messages were stored: left out of the fingerprint while
    # null, so an old message re-sent keeps its fingerprint (no false `conflict`).
    _unprinted_when_null: ClassVar[tuple[str, ...]] = ()

    def business_id(self) -> str | None:
        name = self._business_id_field
        return None if name is None else str(getattr(self, name))

    def to_payload(self) -> dict[str, Any]:
        """The type-specific fields (no envelope), JSON-safe; optional fields as null."""
        values = self.__dict__  # pydantic keeps field values there; cheaper than getattr
        return {
            name: value if type(value := values[name]) in _AS_IS else _wire(value)
            for name in _field_names(type(self))[0]
        }

    def fingerprint(self) -> str:
        """sha256 hex of the canonical JSON of the message without its message_id."""
        values = self.__dict__
        doc = {
            name: value if type(value := values[name]) in _AS_IS else _canonical(value)
            for name in _field_names(type(self))[1]
        }
        for name in self._unprinted_when_null:
            if doc[name] is None:
                del doc[name]
        text = _CANONICAL_JSON.encode(doc)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def differing_fields(message: Envelope, original: dict[str, Any]) -> list[str]:
    """The fields (all but `message_id`) in which `message` differs from `original`, the
    envelope and payload of an earlier message in wire form (e.g. a stored event's data plus
    its `occurred_at`), compared canonically as the fingerprint does ("10.0" == "10.00").

    Returns [] when `original` is not a valid message of the same type.
    """
    model = type(message)
    try:
        other = model.model_validate({**original, "type": message.type})
    except ValidationError:
        return []
    values, others = message.__dict__, other.__dict__
    return [
        name
        for name in _field_names(model)[1]
        if _canonical(values[name]) != _canonical(others[name])
    ]


@functools.cache
def _field_names(model: type[Envelope]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(payload fields, fingerprinted fields) of a message type, in declaration order."""
    names = tuple(model.model_fields)
    return (
        tuple(n for n in names if n not in ENVELOPE_FIELDS),
        tuple(n for n in names if n != "message_id"),
    )


# = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class CustomerRegisteredMsg(Envelope):
    type: Literal["customer_registered"] = "customer_registered"
    name: RequiredText
    currency: Currency
    payment_terms_days: PaymentTerms = 30
    collections_policy: RequiredText = "standard"
    email: Email | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            defaults = {"payment_terms_days", "collections_policy"}
            data = {k: v for k, v in data.items() if not (k in defaults and v is None)}
        return data


class CustomerUpdatedMsg(Envelope):
    type: Literal["customer_updated"] = "customer_updated"
    name: RequiredText | None = None
    payment_terms_days: PaymentTerms | None = None
    collections_policy: RequiredText | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> CustomerUpdatedMsg:
        names = ("name", "payment_terms_days", "collections_policy", "email")
        if all(getattr(self, n) is None for n in names):
            raise _rule("name", "customer_updated needs at least one of " + ", ".join(names))
        return self


class ChargeMsg(Envelope):
    type: Literal["charge"] = "charge"
    _business_id_field: ClassVar[str | None] = "charge_id"

    charge_id: BusinessId
    subscription_id: PartnerCenterId
    product_id: BusinessId
    sku_id: BusinessId
    description: RequiredText
    charge_type: ChargeType
    quantity: Quantity
    unit_price: UnitPrice
    amount: MoneyAmount
    currency: Currency
    cost: MoneyAmount
    billing_period: BillingPeriod
    charge_start: Day
    charge_end: Day
    ms_invoice_number: BusinessId | None = None
    ms_charge_type: RequiredText | None = None
    cost_currency: Currency | None = None
    cost_fx_rate: FxRate | None = None

    _unprinted_when_null: ClassVar[tuple[str, ...]] = (
        "ms_charge_type", "cost_currency", "cost_fx_rate",
    )  # fmt: skip

    @model_validator(mode="after")
    def _rules(self) -> ChargeMsg:
        cost_currency = self.cost_currency or self.currency
        for name, currency in (("amount", self.currency), ("cost", cost_currency)):
            try:
                check_scale(getattr(self, name), currency, name)
            except InvalidMessage as exc:
                raise _rule(name, _detail(exc, name)) from None
        if cost_currency != self.currency and self.cost_fx_rate is None:
            raise _rule("cost_fx_rate", f"required when cost_currency {cost_currency} differs "
                                        f"from currency {self.currency}")  # fmt: skip
        if self.cost_fx_rate is not None and self.cost_fx_rate <= 0:
            raise _rule("cost_fx_rate", "must be > 0")
        refund = self.charge_type == "cancel_refund"
        credit = self.charge_type in CREDIT_CHARGE_TYPES
        only = "only cancel_refund, remove_quantity, customer_credit and convert charges"
        for name in ("amount", "cost"):
            value: Decimal = getattr(self, name)
            if refund and value > 0:
                raise _rule(name, "must be <= 0 for a cancel_refund charge")
            if not credit and value < 0:
                raise _rule(name, f"must be >= 0 ({only} may be negative)")
        if self.unit_price < 0:
            raise _rule("unit_price", "must be >= 0")
        if not credit and self.quantity < 0:
            raise _rule("quantity", f"must be >= 0 ({only} may be negative)")
        if self.charge_end < self.charge_start:
            raise _rule(
                "charge_end",
                f"{self.charge_end} is before charge_start {self.charge_start}",
            )
        return self


class _PositiveAmount(Envelope):
    """amount > 0 fitting the currency's minor unit."""

    amount: MoneyAmount
    currency: Currency

    @model_validator(mode="after")
    def _positive(self) -> _PositiveAmount:
        try:
            check_scale(self.amount, self.currency, "amount")
        except InvalidMessage as exc:
            raise _rule("amount", _detail(exc, "amount")) from None
        if self.amount <= 0:
            raise _rule("amount", "must be > 0")
        return self


class PaymentMsg(_PositiveAmount):
    type: Literal["payment"] = "payment"
    _business_id_field: ClassVar[str | None] = "payment_id"

    payment_id: BusinessId
    method: PaymentMethod
    reference: RequiredText
    invoice_id: InvoiceRef | None = None


class PaymentReversedMsg(Envelope):
    type: Literal["payment_reversed"] = "payment_reversed"

    payment_id: BusinessId
    reason: ReversalReason


class CreditNoteMsg(_PositiveAmount):
    type: Literal["credit_note"] = "credit_note"
    _business_id_field: ClassVar[str | None] = "credit_id"

    credit_id: BusinessId
    reason: RequiredText
    invoice_id: InvoiceRef | None = None


class RefundMsg(_PositiveAmount):
    type: Literal["refund"] = "refund"
    _business_id_field: ClassVar[str | None] = "refund_id"

    refund_id: BusinessId
    reason: RequiredText


class SupportTicketOpenedMsg(Envelope):
    type: Literal["support_ticket_opened"] = "support_ticket_opened"
    _business_id_field: ClassVar[str | None] = "ticket_id"

    ticket_id: BusinessId
    channel: Channel
    category: Category
    severity: Severity
    subject: RequiredText


class SupportInteractionMsg(Envelope):
    type: Literal["support_interaction"] = "support_interaction"

    ticket_id: BusinessId
    minutes: Minutes
    note: Text
    billable: bool


class SupportEscalatedMsg(Envelope):
    type: Literal["support_escalated"] = "support_escalated"

    ticket_id: BusinessId
    vehicle: Vehicle
    microsoft_case_id: BusinessId | None = None


class SupportTicketResolvedMsg(Envelope):
    type: Literal["support_ticket_resolved"] = "support_ticket_resolved"

    ticket_id: BusinessId
    resolution: RequiredText


Message = Annotated[
    CustomerRegisteredMsg
    | CustomerUpdatedMsg
    | ChargeMsg
    | PaymentMsg
    | PaymentReversedMsg
    | CreditNoteMsg
    | RefundMsg
    | SupportTicketOpenedMsg
    | SupportInteractionMsg
    | SupportEscalatedMsg
    | SupportTicketResolvedMsg,
    Field(discriminator="type"),
]

MESSAGE_TYPES: dict[str, type[Envelope]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        CustomerRegisteredMsg,
        CustomerUpdatedMsg,
        ChargeMsg,
        PaymentMsg,
        PaymentReversedMsg,
        CreditNoteMsg,
        RefundMsg,
        SupportTicketOpenedMsg,
        SupportInteractionMsg,
        SupportEscalatedMsg,
        SupportTicketResolvedMsg,
    )
}


# --------------------------------------------------------------------------- parsing

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "decimal_type": "a decimal string",
    "date_type": "a date YYYY-MM-DD",
    "datetime_type": "an RFC 3339 timestamp",
}


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """(field path, one-line detail) of one pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = [str(part) for part in error["loc"]]
    if kind == "ledger_rule":
        loc = [*loc, ctx["field"]]
    field = ".".join(loc) or "message"
    given = error.get("input")
    if kind in ("ledger", "ledger_rule"):
        detail = str(ctx["detail"])
    elif kind == "missing":
        detail = "field required"
    elif kind in _TYPE_WORDS:
        detail = f"must be {_TYPE_WORDS[kind]}, got {_short(given)}"
    elif kind == "literal_error":
        detail = f"must be one of {ctx['expected']}, got {_short(given)}"
    elif kind == "string_too_short":
        detail = "must not be empty"
    elif kind == "string_too_long":
        detail = f"must be at most {ctx['max_length']} characters"
    elif kind == "greater_than_equal":
        detail = f"must be >= {ctx['ge']}, got {_short(given)}"
    elif kind == "less_than_equal":
        detail = f"must be <= {ctx['le']}, got {_short(given)}"
    else:  # pragma: no cover - a pydantic error kind the models do not produce today
        detail = str(error["msg"])
    return field, detail


def _invalid(exc: ValidationError) -> InvalidMessage:
    described = [_describe(e) for e in exc.errors(include_url=False)]
    shown = described[:5]
    text = "; ".join(f"{field}: {detail}" for field, detail in shown)
    if len(described) > len(shown):
        text += f"; and {len(described) - len(shown)} more"
    return InvalidMessage(text, field=described[0][0])


def parse_object(obj: object, *, key: str | bytes | None = None) -> Message:
    """Validate an already decoded JSON value (same errors as `parse_message`)."""
    if not isinstance(obj, dict):
        raise MalformedJson(
            f"message: value must be a JSON object, not {_json_kind(obj)}", field="message"
        )
    if "type" not in obj:
        raise InvalidMessage("type: field required", field="type")
    kind = obj["type"]
    if not isinstance(kind, str):
        raise InvalidMessage(f"type: must be a string, got {_short(kind)}", field="type")
    model = MESSAGE_TYPES.get(kind)
    if model is None:
        raise UnknownType(f"type: unknown message type {_short(kind)}", field="type")
    try:
        message: Message = model.model_validate(obj)  # type: ignore[assignment]
    except ValidationError as exc:
        raise _invalid(exc) from None
    if key is not None:
        _check_key(key, message.customer_id)
    return message


def _check_key(key: str | bytes, customer_id: str) -> None:
    if isinstance(key, bytes):
        try:
            key = key.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyMismatch(
                f"customer_id: the record key {_short(key)} is not UTF-8", field="customer_id"
            ) from None
    # The producer may write a GUID key in either case: the same customer (SPEC §2).
    if normalize_id(key) != customer_id:
        raise KeyMismatch(
            f"customer_id: {customer_id!r} differs from the record key {_short(key)}",
            field="customer_id",
        )


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise MalformedJson(f"{name}: duplicate key in JSON object", field=name)
        obj[name] = value
    return obj


def _no_constant(name: str) -> Any:
    raise MalformedJson(f"message: {name} is not valid JSON")


def parse_message(raw: bytes | str, *, key: str | bytes | None = None) -> Message:
    """Parse one ingest message. Raises a LedgerError subclass with the right code:

    - MessageTooLarge ("too_large") when raw is larger than MAX_MESSAGE_BYTES (UTF-8 bytes);
    - MalformedJson ("malformed_json") for an empty value, bytes that are not UTF-8, invalid
      JSON (also NaN/Infinity, duplicate keys) or JSON that is not an object;
    - InvalidMessage ("invalid_message") when `type` is missing or not a string, and for
      every field error: "<field>: <what is wrong>", with `.field` the (dotted) field name;
    - UnknownType ("unknown_type") for an unknown string value of `type`;
    - KeyMismatch ("key_mismatch") when a record key is given and differs from customer_id.
    """
    if isinstance(raw, str):
        if len(raw) > MAX_MESSAGE_BYTES:  # every character is at least one byte
            raise MessageTooLarge(_too_large(len(raw)), field="message")
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJson("message: value is not valid UTF-8", field="message") from None
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(_too_large(len(data)), field="message")
        text = raw
    elif isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(_too_large(len(data)), field="message")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(
                f"message: value is not valid UTF-8 (byte {exc.start})", field="message"
            ) from None
    else:
        raise MalformedJson(
            f"message: value must be bytes or str, not {type(raw).__name__}", field="message"
        )
    if not text.strip():
        raise MalformedJson("message: empty value", field="message")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except LedgerError:
        raise
    except json.JSONDecodeError as exc:
        raise MalformedJson(
            f"message: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            field="message",
        ) from None
    except (ValueError, RecursionError) as exc:  # huge int literal, absurd nesting
        raise MalformedJson(f"message: invalid JSON: {exc}", field="message") from None
    return parse_object(obj, key=key)


def _too_large(size: int) -> str:
    return f"message: value is larger than {MAX_MESSAGE_BYTES} bytes (at least {size})"
