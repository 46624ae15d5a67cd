"""What every message shares: the envelope fields, the payload and its fingerprint (canonical
JSON), and which fields differ between two messages (named in conflicts)."""

from __future__ import annotations

import functools
import hashlib
import types
import typing
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from ledger.domain.hashchain import canonical_bytes
from ledger.domain.isotext import iso_timestamp
from ledger.messages.fields import (
    ENVELOPE_FIELDS,
    CustomerId,
    Timestamp,
    _unicode,
)

# --------------------------------------------------------------------------- JSON forms


# Field values that are already their JSON form (most fields): the fast path of _wire and
# _canonical, which run for every field of every message.
_AS_IS = frozenset({str, int, bool, type(None)})


def _wire(value: object) -> object:
    """JSON-safe form of a field value: decimals as strings as given, dates ISO."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is Decimal:
        return decimal_text(value)  # type: ignore[arg-type]
    if kind is date:
        return value.isoformat()  # type: ignore[attr-defined]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _canonical(value: object) -> object:
    """Canonical form for fingerprints: decimals normalised, timestamps in UTC."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, Decimal):
        return "0" if value.is_zero() else decimal_text(value.normalize())
    if isinstance(value, datetime):
        return iso_timestamp(value.astimezone(UTC))
    return _wire(value)


def decimal_text(value: Decimal) -> str:
    """`format(value, "f")`: the digits as written, never an exponent. str() writes the same
    at a quarter of the cost unless it chooses scientific notation (a positive exponent, or
    more than 6 leading zeros), which says so with an "E"."""
    text = str(value)
    return format(value, "f") if "E" in text else text


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
        names, converted, _ = _field_plan(type(self))
        payload = {name: values[name] for name in names}
        for name in converted:  # decimals and dates (and timestamps) only
            if (value := payload[name]) is not None:
                payload[name] = _wire(value)
        return payload

    def fingerprint(self, payload: dict[str, Any] | None = None) -> str:
        """sha256 hex of the canonical JSON of the message without its message_id.

        `payload`: this message's `to_payload()` when the caller has it (ingest needs both):
        the fingerprint reuses its fields, re-writing only those whose canonical form is
        not their wire form (decimals normalised, timestamps in UTC)."""
        values = self.__dict__
        doc = dict(payload if payload is not None else self.to_payload())
        doc["type"] = values["type"]
        doc["customer_id"] = values["customer_id"]
        doc["occurred_at"] = _canonical(values["occurred_at"])
        for name in _field_plan(type(self))[2]:
            if (value := values[name]) is not None:
                doc[name] = _canonical(value)
        for name in self._unprinted_when_null:
            if doc[name] is None:
                del doc[name]
        # Stored with every decision: these bytes must never change (canonical_bytes).
        return hashlib.sha256(canonical_bytes(doc)).hexdigest()


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


@functools.cache
def _field_plan(model: type[Envelope]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(payload fields, those whose values to_payload converts, those whose canonical form
    differs from their wire form) of a message type. A field's type says it: every value of
    a str/int/bool/Literal field (optional or not) is already its JSON form."""
    payload = _field_names(model)[0]
    fields = model.model_fields
    converted = tuple(n for n in payload if not _as_is(fields[n].annotation))
    recanonical = tuple(n for n in converted if _holds(fields[n].annotation, (Decimal, datetime)))
    return payload, converted, recanonical


def _as_is(annotation: object) -> bool:
    """True when every value of a field of this type is its own JSON form (str, int, bool,
    None, a Literal of those), looking through Annotated, Optional and unions."""
    if annotation in _AS_IS:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return all(type(arg) in _AS_IS for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _as_is(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return all(_as_is(arg) for arg in typing.get_args(annotation))
    return False


def _holds(annotation: object, kinds: tuple[type, ...]) -> bool:
    """True when a field of this type may hold a value of one of `kinds`."""
    if isinstance(annotation, type):
        return issubclass(annotation, kinds)
    return any(_holds(arg, kinds) for arg in typing.get_args(annotation))
