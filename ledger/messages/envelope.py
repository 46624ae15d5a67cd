"""What every message shares: the envelope fields, the payload and its fingerprint (canonical
JSON), and which fields differ between two messages (named in conflicts)."""

from __future__ import annotations

import functools
import hashlib
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
        return iso_timestamp(value.astimezone(UTC))
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
