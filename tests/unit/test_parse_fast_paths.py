"""The parser's fast paths give what the long way gives: orjson for flat JSON objects
(ledger.messages.parser._flat_object) and the plain decimal string (ledger.messages.fields
_decimal). Anything they do not take goes the long way, whose errors test_messages checks."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import LedgerError
from ledger.domain.hashchain import canonical_bytes
from ledger.domain.money import MAX_INTEGER_DIGITS, decimals_of
from ledger.messages import MESSAGE_TYPES, parse_message, parse_object
from ledger.messages.envelope import _canonical, _field_names, _wire, decimal_text
from ledger.messages.fields import _decimal
from ledger.messages.parser import _DECODER, _flat_object
from tests.unit.test_messages import doc

_VALUES = st.sampled_from(
    ['"x"', '""', '"a:b"', '"q\\"uote"', '"\\\\"', '"\\\\\\""', '"\\u0061"', '"\\ud800"',
     '"\\ud83d\\ude00"', '"\\/"', "1", "-2", "true", "null", "1.5", "{}", "[1]",
     "123456789012345678901234567890", "NaN"]
)  # fmt: skip
_SPACE = st.sampled_from(["", " ", "\n", "\t "])


@st.composite
def _objects(draw: st.DrawFn) -> bytes:
    """A JSON object text, often with a duplicate key, with spaces anywhere JSON allows."""
    keys = draw(st.lists(st.sampled_from(["a", "b", "\\u0061", "\\\\", '\\"']), max_size=5))
    pairs = [
        f'{draw(_SPACE)}"{key}"{draw(_SPACE)}:{draw(_SPACE)}{draw(_VALUES)}{draw(_SPACE)}'
        for key in keys
    ]
    return ("{" + draw(_SPACE) + ",".join(pairs) + "}").encode()


@settings(max_examples=1500)
@given(_objects())
def test_orjson_takes_only_what_the_json_module_reads_the_same(text: bytes) -> None:
    fast = _flat_object(text)
    if fast is None:
        return
    slow = _DECODER.decode(text.decode())  # raises on a duplicate key: never taken fast
    assert list(fast.items()) == list(slow.items())
    assert all(type(fast[k]) is type(slow[k]) for k in fast)


@pytest.mark.parametrize("space", ["", " ", "\n"])
def test_duplicate_key_is_refused_with_spaces_around_the_colon(space: str) -> None:
    text = json.dumps(doc("payment"))[:-1] + f', "amount"{space}:{space}"1.00"}}'
    with pytest.raises(LedgerError) as info:
        parse_message(text.encode())
    assert (info.value.code, info.value.field) == ("malformed_json", "amount")


def test_integer_beyond_64_bits_is_named_as_written() -> None:
    # orjson would read it as a float: the json module's int is the one the error shows.
    huge = 10**30
    text = json.dumps(doc("customer_registered", payment_terms_days=huge)).encode()
    with pytest.raises(LedgerError) as info:
        parse_message(text)
    assert info.value.field == "payment_terms_days"
    assert str(huge) in info.value.message


_DIGITS = st.text("0123456789", max_size=MAX_INTEGER_DIGITS + 3)


@settings(max_examples=600)
@given(st.sampled_from(["", "-"]), _DIGITS, st.none() | _DIGITS)
def test_decimal_string_parses_to_its_value_or_fails(
    sign: str, whole: str, frac: str | None
) -> None:
    text = sign + whole + ("" if frac is None else "." + frac)
    parse = _decimal(allow_int=False, max_decimals=4)
    valid = (
        whole != ""
        and frac != ""
        and len(whole.lstrip("0")) <= MAX_INTEGER_DIGITS
        and len(frac or "") <= 4
    )
    if not valid:
        with pytest.raises(ValueError):  # pydantic's custom error is a ValueError
            parse(text)
        return
    number = parse(text)
    assert isinstance(number, Decimal)
    written = Decimal(text)
    assert str(number) == str(written.copy_abs() if written.is_zero() else written)  # no -0
    assert decimals_of(number) == len(frac or "")


@pytest.mark.parametrize(
    "text", ["1E+2", "1.5E-7", "0E-10", "-0.000", "123.4500", "7", "0.0000001"]
)
def test_decimals_of_as_the_exponent_says(text: str) -> None:
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    assert decimals_of(number) == max(0, -exponent)


@pytest.mark.parametrize("kind", sorted(MESSAGE_TYPES))
def test_payload_and_fingerprint_convert_every_field_that_needs_it(kind: str) -> None:
    """The per-type plan (envelope._field_plan) converts the fields the generic rule would,
    and the fingerprint made from the payload is the one made from the fields."""
    message = parse_message(json.dumps(doc(kind, **_OPTIONAL_SET.get(kind, {}))).encode())
    values = message.__dict__
    payload_names, printed_names = _field_names(type(message))
    payload = message.to_payload()
    assert list(payload.items()) == [(name, _wire(values[name])) for name in payload_names]
    printed = {name: _canonical(values[name]) for name in printed_names}
    for name in message._unprinted_when_null:  # optional fields of later versions
        if printed[name] is None:
            del printed[name]
    expected = hashlib.sha256(canonical_bytes(printed)).hexdigest()
    assert message.fingerprint() == message.fingerprint(payload) == expected
    assert all(type(value) in (str, int, bool, type(None)) for value in printed.values())


# Optional fields that are null in test_messages' documents.
_OPTIONAL_SET: dict[str, dict[str, str]] = {
    "charge": {"ms_charge_type": "cycleFee", "cost_currency": "EUR", "cost_fx_rate": "0.9"},
}


@settings(max_examples=400)
@given(st.decimals(allow_nan=True, allow_infinity=True, places=None))
def test_decimal_text_is_format_f(number: Decimal) -> None:
    assert decimal_text(number) == format(number, "f")


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("charge_id", "CH-\u00e9\ud800", "lone surrogate"),
        ("charge_id", "CH-1\n", "control characters"),
        ("charge_id", "C" * 129, "at most 128 characters"),
        ("charge_id", "   ", "must not be empty"),
        ("charge_start", "2025-02-30", "is not a valid date"),
        ("occurred_at", "2025-02-30T00:00:00Z", "is not a valid timestamp"),
    ],
)
def test_the_long_way_still_names_what_is_wrong(field: str, value: str, detail: str) -> None:
    # Each value once valid-looking enough to be remembered, then refused every time.
    for _ in range(2):
        with pytest.raises(LedgerError) as info:
            parse_object(doc("charge", **{field: value}))
        assert info.value.field == field and detail in info.value.message


def test_remembered_days_and_timestamps_are_the_values_written() -> None:
    first = parse_object(
        doc("charge", charge_start="2024-01-31", occurred_at="2025-01-31T23:00:00-01:00")
    )
    again = parse_object(
        doc("charge", charge_start="2024-01-31", occurred_at="2025-01-31T23:00:00-01:00")
    )
    assert again.charge_start == first.charge_start == date(2024, 1, 31)
    assert again.occurred_at.isoformat() == "2025-01-31T23:00:00-01:00"


@pytest.mark.parametrize(
    "text",
    [b'{"a":"x\ty"}', b'{"a":"x\x00y"}', b'\xef\xbb\xbf{"a":1}', b'{"a":1}\x0c', b'{"a":01}',
     b'{"a":+1}', b'{"a":1}garbage', b' {"a":-0} ', b'{"a":"\x7f"}',
     b'{"a":18446744073709551615}', b'{"a":-9223372036854775809}', b'{"a":1e400}'],
)  # fmt: skip
def test_edges_of_json_read_as_the_json_module_reads_them(text: bytes) -> None:
    fast = _flat_object(text)
    try:
        slow = _DECODER.decode(text.decode())
    except ValueError:  # refused by the json module: never taken fast
        assert fast is None
        return
    assert fast is None or (fast == slow and all(type(fast[k]) is type(slow[k]) for k in fast))
