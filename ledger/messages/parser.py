"""From bytes to a message: the discriminated union of every type, the parser and its
errors (one typed error naming the field, or the dead-letter code of the whole record)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
from pydantic import (
    Field,
    ValidationError,
)
from pydantic_core import ErrorDetails

from ledger.domain.errors import (
    InvalidMessage,
    KeyMismatch,
    LedgerError,
    MalformedJson,
    MessageTooLarge,
    UnknownType,
)
from ledger.domain.ids import normalize_id
from ledger.messages.billing import (
    ChargeMsg,
    CreditNoteMsg,
    PaymentMsg,
    PaymentReversedMsg,
    RefundMsg,
    WriteOffMsg,
    WriteOffReversedMsg,
)
from ledger.messages.customers import CustomerRegisteredMsg, CustomerUpdatedMsg
from ledger.messages.envelope import Envelope
from ledger.messages.fields import (
    MAX_MESSAGE_BYTES,
    _short,
)
from ledger.messages.support import (
    SupportEscalatedMsg,
    SupportInteractionMsg,
    SupportTicketOpenedMsg,
    SupportTicketResolvedMsg,
)

Message = Annotated[
    CustomerRegisteredMsg
    | CustomerUpdatedMsg
    | ChargeMsg
    | PaymentMsg
    | PaymentReversedMsg
    | CreditNoteMsg
    | RefundMsg
    | WriteOffMsg
    | WriteOffReversedMsg
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
        WriteOffMsg,
        WriteOffReversedMsg,
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


# = json.loads(text, object_pairs_hook=..., parse_constant=...), without building a decoder
# per message.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


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
    obj = _flat_object(data)
    if obj is not None:
        return parse_object(obj, key=key)
    try:
        obj = _DECODER.decode(text)
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


# Not float: orjson reads an integer beyond 64 bits as one (the json module, as an int); the
# messages have no float field, so a float is an error the json module's value must name.
_SCALARS = frozenset({str, int, bool, type(None)})


def _flat_object(data: bytes) -> dict[str, Any] | None:
    """The message decoded by orjson (in C, a quarter of the json module's time with the
    duplicate-key hook), or None when the json module must decide: anything that is not a
    flat object of strings, ints, booleans and nulls (NaN, floats, nesting, a lone
    surrogate, invalid JSON...).

    orjson keeps a duplicate key silently (the last wins); it is found by counting quotes.
    Each string of the text, key or value, has two quotes that are not escaped: a text with
    more than the dict's keys and string values account for had a duplicate key, and goes
    to the json module, which refuses it with its error. (A quote is escaped by the
    backslash before it once the escaped backslashes, `\\\\` pairs, are taken out.)"""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    strings = 0
    for value in obj.values():
        kind = type(value)
        if kind is str:
            strings += 1
        elif kind not in _SCALARS:
            return None
    quotes = data.count(b'"')
    if b"\\" in data:
        quotes -= data.replace(b"\\\\", b"").count(b'\\"')
    if quotes != 2 * (len(obj) + strings):
        return None
    return obj


def _too_large(size: int) -> str:
    return f"message: value is larger than {MAX_MESSAGE_BYTES} bytes (at least {size})"
