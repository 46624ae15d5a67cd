"""Unit tests of the ingest message models and parser (SPEC §3)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger.domain.errors import LedgerError
from ledger.messages import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    ChargeMsg,
    CreditNoteMsg,
    CustomerRegisteredMsg,
    CustomerUpdatedMsg,
    PaymentMsg,
    PaymentReversedMsg,
    RefundMsg,
    SupportEscalatedMsg,
    SupportInteractionMsg,
    SupportTicketOpenedMsg,
    SupportTicketResolvedMsg,
    WriteOffMsg,
    WriteOffReversedMsg,
    parse_message,
    parse_object,
)

ENVELOPE = {
    "message_id": "msg-0001",
    "customer_id": "contoso-01",
    "occurred_at": "2024-03-05T09:30:00+01:00",
}

VALID: dict[str, dict[str, Any]] = {
    "customer_registered": {
        "name": "Contoso Ltd",
        "currency": "USD",
        "payment_terms_days": 14,
        "collections_policy": "standard",
        "email": "ap@contoso.example",
    },
    "customer_updated": {"payment_terms_days": 45},
    "charge": {
        "charge_id": "CH-1",
        "subscription_id": "sub-1",
        "product_id": "CFQ7TTC0LH18",
        "sku_id": "0001",
        "description": "Microsoft 365 Business Basic",
        "charge_type": "new",
        "quantity": "10",
        "unit_price": "6.123456",
        "amount": "60.00",
        "currency": "USD",
        "cost": "48.00",
        "billing_period": "2024-03",
        "charge_start": "2024-03-01",
        "charge_end": "2024-03-31",
        "ms_invoice_number": "G012345678",
    },
    "payment": {
        "payment_id": "PAY-1",
        "amount": "125.00",
        "currency": "USD",
        "method": "bank_transfer",
        "reference": "WIRE 42",
        "invoice_id": "INV-contoso-01-2024-02",
    },
    "payment_reversed": {"payment_id": "PAY-1", "reason": "chargeback"},
    "credit_note": {"credit_id": "CN-1", "amount": "5.00", "currency": "USD", "reason": "goodwill"},
    "refund": {"refund_id": "RF-1", "amount": "5.00", "currency": "USD", "reason": "overpaid"},
    "support_ticket_opened": {
        "ticket_id": "T-1",
        "channel": "email",
        "category": "billing",
        "severity": "b",
        "subject": "Invoice question",
    },
    "support_interaction": {"ticket_id": "T-1", "minutes": 15, "note": "", "billable": True},
    "support_escalated": {
        "ticket_id": "T-1",
        "vehicle": "microsoft_commercial",
        "microsoft_case_id": "2403050010001234",
    },
    "support_ticket_resolved": {"ticket_id": "T-1", "resolution": "Explained proration"},
    "write_off": {
        "write_off_id": "WO-1",
        "amount": "40.04",
        "currency": "EUR",
        "reason": "insolvent",
        "invoice_id": "INV-contoso-01-2024-02",
    },
    "write_off_reversed": {"write_off_id": "WO-1", "reason": "recovered"},
}

CLASSES = {
    "customer_registered": CustomerRegisteredMsg,
    "customer_updated": CustomerUpdatedMsg,
    "charge": ChargeMsg,
    "payment": PaymentMsg,
    "payment_reversed": PaymentReversedMsg,
    "credit_note": CreditNoteMsg,
    "refund": RefundMsg,
    "support_ticket_opened": SupportTicketOpenedMsg,
    "support_interaction": SupportInteractionMsg,
    "support_escalated": SupportEscalatedMsg,
    "support_ticket_resolved": SupportTicketResolvedMsg,
    "write_off": WriteOffMsg,
    "write_off_reversed": WriteOffReversedMsg,
}

BUSINESS_IDS = {
    "charge": "CH-1",
    "payment": "PAY-1",
    "credit_note": "CN-1",
    "refund": "RF-1",
    "support_ticket_opened": "T-1",
    "write_off": "WO-1",
}


def doc(kind: str, **changes: Any) -> dict[str, Any]:
    """A valid message of `kind` with `changes` applied (a value of DROP removes the field)."""
    out = {**ENVELOPE, "type": kind, **VALID[kind]}
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


DROP = object()


def raw(kind: str, **changes: Any) -> bytes:
    return json.dumps(doc(kind, **changes)).encode("utf-8")


def fails(data: bytes | str, code: str, field: str | None = None, **kw: Any) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        parse_message(data, **kw)
    err = info.value
    assert err.code == code, err.message
    assert "\n" not in err.message
    if field is not None:
        assert field in err.message, err.message
        assert err.field == field, (err.field, err.message)
    return err


# ------------------------------------------------------------------ valid messages


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_message_of_each_type_parses(kind: str) -> None:
    msg = parse_message(raw(kind), key="contoso-01")
    assert type(msg) is CLASSES[kind]
    assert msg.type == kind
    assert msg.message_id == "msg-0001"
    assert msg.customer_id == "contoso-01"
    assert msg.occurred_at == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert msg.occurred_at.utcoffset() == timedelta(hours=1)  # the offset given is kept
    assert msg.business_id() == BUSINESS_IDS.get(kind)
    assert len(msg.fingerprint()) == 64
    payload = msg.to_payload()
    assert not {"message_id", "type", "customer_id", "occurred_at"} & payload.keys()
    json.dumps(payload)  # JSON-safe
    for name, value in VALID[kind].items():
        assert payload[name] == value


def test_message_types_cover_the_spec() -> None:
    assert MESSAGE_TYPES == CLASSES


def test_str_input_is_accepted() -> None:
    assert isinstance(parse_message(raw("payment").decode()), PaymentMsg)


def test_models_are_frozen() -> None:
    msg = parse_message(raw("payment"))
    with pytest.raises(ValidationError):
        msg.amount = Decimal("1.00")  # type: ignore[misc]


def test_money_fields_are_decimals_and_dates_are_dates() -> None:
    msg = parse_message(raw("charge"))
    assert isinstance(msg, ChargeMsg)
    assert msg.amount == Decimal("60.00") and isinstance(msg.amount, Decimal)
    assert msg.unit_price == Decimal("6.123456")
    assert msg.quantity == Decimal(10)
    assert msg.charge_start == date(2024, 3, 1)
    assert msg.to_payload()["amount"] == "60.00"


def test_customer_registered_defaults() -> None:
    msg = parse_message(
        raw("customer_registered", payment_terms_days=DROP, collections_policy=DROP, email=DROP)
    )
    assert isinstance(msg, CustomerRegisteredMsg)
    assert msg.payment_terms_days == 30
    assert msg.collections_policy == "standard"
    assert msg.email is None


def test_future_extra_fields_are_ignored() -> None:
    plain = parse_message(raw("payment"))
    extended = parse_message(raw("payment", schema_version=2, loyalty={"points": 3}))
    assert extended == plain
    assert "schema_version" not in extended.to_payload()
    assert extended.fingerprint() == plain.fingerprint()


def test_quantity_accepts_json_integer() -> None:
    msg = parse_message(raw("charge", quantity=3))
    assert isinstance(msg, ChargeMsg) and msg.quantity == Decimal(3)


def test_cancel_refund_may_be_negative() -> None:
    msg = parse_message(
        raw("charge", charge_type="cancel_refund", amount="-60.00", cost="-48.00", quantity="-10")
    )
    assert isinstance(msg, ChargeMsg) and msg.amount == Decimal("-60.00")


def test_zero_decimal_currency_and_negative_zero() -> None:
    msg = parse_message(raw("payment", currency="JPY", amount="1500"))
    assert isinstance(msg, PaymentMsg) and msg.amount == Decimal(1500)
    charge = parse_message(raw("charge", amount="-0.00", cost="0"))
    assert isinstance(charge, ChargeMsg) and charge.to_payload()["amount"] == "0.00"


def test_key_as_bytes_and_none() -> None:
    assert parse_message(raw("payment"), key=b"contoso-01").customer_id == "contoso-01"
    assert parse_message(raw("payment"), key=None).customer_id == "contoso-01"


def test_parse_object_accepts_decoded_json() -> None:
    assert isinstance(parse_object(doc("refund")), RefundMsg)


# ------------------------------------------------------------------ fingerprint


def test_fingerprint_ignores_message_id_only() -> None:
    a = parse_message(raw("payment"))
    b = parse_message(raw("payment", message_id="msg-other"))
    c = parse_message(raw("payment", amount="126.00"))
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_fingerprint_normalises_decimals_timestamps_and_defaults() -> None:
    a = parse_message(raw("charge", unit_price="6.1", quantity="10"))
    b = parse_message(
        raw("charge", unit_price="6.100000", quantity=10, occurred_at="2024-03-05T08:30:00Z")
    )
    assert a.fingerprint() == b.fingerprint()
    c = parse_message(raw("customer_registered", payment_terms_days=30, collections_policy=DROP))
    d = parse_message(raw("customer_registered", payment_terms_days=DROP))
    assert c.fingerprint() == d.fingerprint()


def test_fingerprint_differs_by_customer_and_type() -> None:
    a = parse_message(raw("credit_note"))
    b = parse_message(raw("credit_note", customer_id="fabrikam"))
    assert a.fingerprint() != b.fingerprint()


# ------------------------------------------------------------------ framing errors


def test_malformed_json() -> None:
    fails(b'{"type": "payment",', "malformed_json", "message")


def test_non_utf8_bytes() -> None:
    fails(b'{"type": "payment", "name": "\xff\xfe"}', "malformed_json", "message")


@pytest.mark.parametrize("value", [b"", "", b"   \n"])
def test_empty_value(value: bytes | str) -> None:
    fails(value, "malformed_json", "message")


@pytest.mark.parametrize("value", [b"[1, 2]", b'"payment"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object(value: bytes) -> None:
    fails(value, "malformed_json", "message")


@pytest.mark.parametrize("value", [b'{"a": NaN}', b'{"a": Infinity}'])
def test_non_standard_json_constants(value: bytes) -> None:
    fails(value, "malformed_json")


def test_duplicate_keys() -> None:
    data = raw("payment")[:-1] + b', "amount": "1.00"}'
    fails(data, "malformed_json", "amount")


def test_lone_surrogate_in_str_input() -> None:
    fails('{"type": "payment", "x": "\ud800"}', "malformed_json", "message")


def test_oversized_value() -> None:
    data = doc("payment", padding="x" * MAX_MESSAGE_BYTES)
    fails(json.dumps(data).encode(), "too_large", "message")
    fails(json.dumps(data), "too_large", "message")


def test_value_of_exactly_the_limit_is_not_too_large() -> None:
    base = json.dumps(doc("payment", padding="")).encode()
    data = json.dumps(doc("payment", padding="x" * (MAX_MESSAGE_BYTES - len(base)))).encode()
    assert len(data) == MAX_MESSAGE_BYTES
    assert isinstance(parse_message(data), PaymentMsg)


def test_multibyte_str_counted_in_utf8_bytes() -> None:
    data = json.dumps(doc("payment", padding="é" * (MAX_MESSAGE_BYTES // 2)), ensure_ascii=False)
    assert len(data) < MAX_MESSAGE_BYTES < len(data.encode())
    fails(data, "too_large")


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    fails(b"[" * 100_000 + b"]" * 100_000, "malformed_json")


# ------------------------------------------------------------------ type


def test_missing_type() -> None:
    fails(raw("payment", type=DROP), "invalid_message", "type")


def test_type_not_a_string() -> None:
    fails(raw("payment", type=7), "invalid_message", "type")


@pytest.mark.parametrize("kind", ["invoice_paid", "", "Payment"])
def test_unknown_type(kind: str) -> None:
    fails(raw("payment", type=kind), "unknown_type", "type")


# ------------------------------------------------------------------ envelope


@pytest.mark.parametrize("name", ["message_id", "customer_id", "occurred_at"])
def test_missing_envelope_field(name: str) -> None:
    err = fails(raw("payment", **{name: DROP}), "invalid_message", name)
    assert "field required" in err.message


@pytest.mark.parametrize("value", ["", "x" * 129, 12])
def test_bad_message_id(value: object) -> None:
    fails(raw("payment", message_id=value), "invalid_message", "message_id")


def test_message_id_of_128_chars_is_valid() -> None:
    assert parse_message(raw("payment", message_id="m" * 128)).message_id == "m" * 128


@pytest.mark.parametrize("value", ["", "a" * 65, "bad id", "ünï", "a/b", 5])
def test_bad_customer_id(value: object) -> None:
    fails(raw("payment", customer_id=value), "invalid_message", "customer_id")


def test_customer_id_allowed_charset() -> None:
    cid = "Az09._:-" + "x" * 56
    assert parse_message(raw("payment", customer_id=cid)).customer_id == cid


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-05T09:30:00",  # naive
        "2024-03-05 09:30:00",  # naive, space
        "2024-03-05",  # date only
        "2024-03-05T25:00:00Z",  # hour
        "2024-02-30T10:00:00Z",  # day
        "2024-03-05T09:30:00+0100",  # offset without colon is not RFC 3339
        "yesterday",
        1709627400,
    ],
)
def test_bad_occurred_at(value: object) -> None:
    fails(raw("payment", occurred_at=value), "invalid_message", "occurred_at")


def test_naive_timestamp_message_says_offset() -> None:
    err = fails(raw("payment", occurred_at="2024-03-05T09:30:00"), "invalid_message", "occurred_at")
    assert "offset" in err.message


@pytest.mark.parametrize(
    "value", ["2024-03-05T09:30:00Z", "2024-03-05t09:30:00.123456z", "2024-03-05T09:30:00-07:00"]
)
def test_good_occurred_at(value: str) -> None:
    assert parse_message(raw("payment", occurred_at=value)).occurred_at.tzinfo is not None


def test_key_mismatch() -> None:
    fails(raw("payment"), "key_mismatch", "customer_id", key="fabrikam")
    fails(raw("payment"), "key_mismatch", "customer_id", key=b"fabrikam")
    fails(raw("payment"), "key_mismatch", "customer_id", key=b"\xff")
    fails(raw("payment"), "key_mismatch", "customer_id", key="")


def test_field_errors_come_before_key_mismatch() -> None:
    fails(raw("payment", amount="-1.00"), "invalid_message", "amount", key="fabrikam")


# ------------------------------------------------------------------ money


@pytest.mark.parametrize("kind", ["payment", "credit_note", "refund"])
@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_positive_only_amounts(kind: str, amount: str) -> None:
    err = fails(raw(kind, amount=amount), "invalid_message", "amount")
    assert "must be > 0" in err.message


def test_negative_payment_amount_message() -> None:
    err = fails(raw("payment", amount="-1.00"), "invalid_message", "amount")
    assert err.message == "amount: must be > 0"


@pytest.mark.parametrize("amount", [12.5, 125, True, None, ["1"]])
def test_amount_as_json_number_or_other_type(amount: object) -> None:
    err = fails(raw("payment", amount=amount), "invalid_message", "amount")
    assert "must be a decimal string" in err.message


@pytest.mark.parametrize("amount", ["abc", "1e3", "1,000.00", "", " 10.00", "NaN", "0x10"])
def test_non_numeric_amount(amount: str) -> None:
    fails(raw("payment", amount=amount), "invalid_message", "amount")


@pytest.mark.parametrize(
    ("currency", "amount"), [("USD", "10.001"), ("JPY", "10.5"), ("KWD", "1.0001")]
)
def test_too_many_decimals_for_currency(currency: str, amount: str) -> None:
    err = fails(raw("payment", currency=currency, amount=amount), "invalid_message", "amount")
    assert "decimals" in err.message


def test_three_decimals_fit_kwd() -> None:
    assert parse_message(raw("refund", currency="KWD", amount="1.125")).amount == Decimal("1.125")


@pytest.mark.parametrize("field", ["amount", "cost"])
def test_charge_amount_and_cost_fit_currency(field: str) -> None:
    fails(raw("charge", **{field: "1.001"}), "invalid_message", field)


@pytest.mark.parametrize("field", ["unit_price", "quantity"])
def test_unit_price_and_quantity_at_most_eighteen_decimals(field: str) -> None:
    # SPEC §2 (issue #13.1): plain decimals of any precision up to 18 places (was 6).
    assert getattr(parse_message(raw("charge", **{field: "1.0000001"})), field) == Decimal(
        "1.0000001"
    )
    assert parse_message(raw("charge", **{field: "0." + "1" * 18}))
    err = fails(raw("charge", **{field: "0." + "1" * 19}), "invalid_message", field)
    assert err.message == f"{field}: 0.{'1' * 19} has 19 decimals, at most 18"


@pytest.mark.parametrize("field", ["unit_price", "cost"])
def test_charge_decimals_refuse_floats(field: str) -> None:
    fails(raw("charge", **{field: 1.5}), "invalid_message", field)


def test_quantity_refuses_float_and_bool() -> None:
    fails(raw("charge", quantity=2.5), "invalid_message", "quantity")
    fails(raw("charge", quantity=True), "invalid_message", "quantity")


@pytest.mark.parametrize("field", ["amount", "cost", "quantity"])
def test_charge_negative_only_for_cancel_refund(field: str) -> None:
    err = fails(raw("charge", **{field: "-1"}), "invalid_message", field)
    assert "cancel_refund" in err.message


@pytest.mark.parametrize("field", ["amount", "cost"])
def test_cancel_refund_must_not_be_positive(field: str) -> None:
    changes = {"charge_type": "cancel_refund", "amount": "-60.00", "cost": "-48.00", field: "1.00"}
    fails(raw("charge", **changes), "invalid_message", field)


def test_unit_price_never_negative() -> None:
    fails(raw("charge", unit_price="-1"), "invalid_message", "unit_price")
    fails(
        raw("charge", charge_type="cancel_refund", amount="-1.00", cost="0", unit_price="-1"),
        "invalid_message",
        "unit_price",
    )


def test_charge_zero_amount_is_valid() -> None:
    assert parse_message(raw("charge", amount="0.00", cost="0.00"))


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "", 840, None])
def test_bad_currency(currency: object) -> None:
    fails(raw("payment", currency=currency), "invalid_message", "currency")


# ------------------------------------------------------------------ charge fields


@pytest.mark.parametrize("value", ["2024-13", "2024-00", "2024-3", "24-03", "2024/03", 202403])
def test_invalid_billing_period(value: object) -> None:
    fails(raw("charge", billing_period=value), "invalid_message", "billing_period")


@pytest.mark.parametrize("field", ["charge_start", "charge_end"])
@pytest.mark.parametrize("value", ["2024-02-30", "20240301", "2024-03-01T00:00:00Z", 1])
def test_invalid_charge_dates(field: str, value: object) -> None:
    fails(raw("charge", **{field: value}), "invalid_message", field)


def test_charge_end_before_start() -> None:
    fails(
        raw("charge", charge_start="2024-03-31", charge_end="2024-03-01"),
        "invalid_message",
        "charge_end",
    )


def test_charge_single_day_is_valid() -> None:
    assert parse_message(raw("charge", charge_start="2024-03-01", charge_end="2024-03-01"))


@pytest.mark.parametrize("value", ["refund", "", "NEW", None])
def test_bad_charge_type(value: object) -> None:
    fails(raw("charge", charge_type=value), "invalid_message", "charge_type")


@pytest.mark.parametrize(
    "field",
    [
        "charge_id",
        "subscription_id",
        "product_id",
        "sku_id",
        "description",
        "charge_type",
        "quantity",
        "unit_price",
        "amount",
        "currency",
        "cost",
        "billing_period",
        "charge_start",
        "charge_end",
    ],
)
def test_charge_required_fields(field: str) -> None:
    err = fails(raw("charge", **{field: DROP}), "invalid_message", field)
    assert err.message == f"{field}: field required"


def test_charge_optional_invoice_number() -> None:
    msg = parse_message(raw("charge", ms_invoice_number=DROP))
    assert isinstance(msg, ChargeMsg) and msg.ms_invoice_number is None


# ------------------------------------------------------------------ enums and other fields


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("payment", "method"),
        ("payment_reversed", "reason"),
        ("support_ticket_opened", "channel"),
        ("support_ticket_opened", "category"),
        ("support_ticket_opened", "severity"),
        ("support_escalated", "vehicle"),
    ],
)
def test_enum_values(kind: str, field: str) -> None:
    err = fails(raw(kind, **{field: "bogus"}), "invalid_message", field)
    assert "must be one of" in err.message


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("customer_registered", "name"),
        ("payment", "payment_id"),
        ("payment", "reference"),
        ("credit_note", "reason"),
        ("refund", "reason"),
        ("support_ticket_opened", "subject"),
        ("support_ticket_opened", "ticket_id"),
        ("support_ticket_resolved", "resolution"),
        ("charge", "description"),
    ],
)
@pytest.mark.parametrize("value", ["", "   "])
def test_required_text_not_empty(kind: str, field: str, value: str) -> None:
    err = fails(raw(kind, **{field: value}), "invalid_message", field)
    assert "empty" in err.message


def test_text_kept_as_given() -> None:
    msg = parse_message(raw("support_ticket_opened", subject="  Invoice  "))
    assert isinstance(msg, SupportTicketOpenedMsg) and msg.subject == "  Invoice  "


def test_business_id_length() -> None:
    fails(raw("payment", payment_id="p" * 129), "invalid_message", "payment_id")


def test_lone_surrogate_escape_in_text() -> None:
    fails(raw("refund", reason="\ud800"), "invalid_message", "reason")


@pytest.mark.parametrize("value", [-1, 366, "30", 30.0, True])
def test_payment_terms_days(value: object) -> None:
    fails(
        raw("customer_registered", payment_terms_days=value),
        "invalid_message",
        "payment_terms_days",
    )


@pytest.mark.parametrize("value", [0, 365])
def test_payment_terms_days_bounds(value: int) -> None:
    msg = parse_message(raw("customer_registered", payment_terms_days=value))
    assert isinstance(msg, CustomerRegisteredMsg) and msg.payment_terms_days == value


def test_bad_email() -> None:
    fails(raw("customer_registered", email="not-an-email"), "invalid_message", "email")


def test_customer_updated_needs_a_field() -> None:
    body = {**ENVELOPE, "type": "customer_updated"}
    err = fails(json.dumps(body), "invalid_message")
    assert "at least one" in err.message and "name" in err.message
    fails(json.dumps({**body, "email": None}), "invalid_message")


@pytest.mark.parametrize(
    "changes", [{"name": "Contoso"}, {"email": "a@b.c"}, {"collections_policy": "strict"}]
)
def test_customer_updated_with_one_field(changes: dict[str, Any]) -> None:
    body = {**ENVELOPE, "type": "customer_updated", **changes}
    assert isinstance(parse_message(json.dumps(body)), CustomerUpdatedMsg)


@pytest.mark.parametrize("value", [-1, 1.5, "15", None, 2**31])
def test_minutes(value: object) -> None:
    fails(raw("support_interaction", minutes=value), "invalid_message", "minutes")


def test_minutes_zero_and_note_empty_are_valid() -> None:
    msg = parse_message(raw("support_interaction", minutes=0, note=""))
    assert isinstance(msg, SupportInteractionMsg) and msg.minutes == 0


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None])
def test_billable_is_a_strict_bool(value: object) -> None:
    err = fails(raw("support_interaction", billable=value), "invalid_message", "billable")
    assert "boolean" in err.message or "field required" in err.message


def test_escalation_case_id_optional() -> None:
    msg = parse_message(raw("support_escalated", microsoft_case_id=DROP))
    assert isinstance(msg, SupportEscalatedMsg) and msg.microsoft_case_id is None


def test_several_errors_on_one_line() -> None:
    err = fails(raw("payment", amount="x", method="cash"), "invalid_message", "amount")
    assert "method" in err.message


# ------------------------------------------------------------------ property: round trip

CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@st.composite
def payments(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    places = CURRENCIES[currency]
    minor = draw(st.integers(min_value=1, max_value=10**12))
    amount = Decimal(minor).scaleb(-places)
    when = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
    offset = draw(st.integers(min_value=-14 * 60, max_value=14 * 60))
    ident = st.text(alphabet="ABCxyz019._:-", min_size=1, max_size=64)
    text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
    return {
        "message_id": draw(st.text(min_size=1, max_size=128)),
        "type": "payment",
        "customer_id": draw(ident),
        "occurred_at": when.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat(),
        "payment_id": draw(ident),
        "amount": format(amount, "f"),
        "currency": currency,
        "method": draw(
            st.sampled_from(["card", "bank_transfer", "direct_debit", "check", "other"])
        ),
        "reference": draw(text),
        "invoice_id": draw(st.none() | ident),
    }


@settings(max_examples=200, deadline=None)
@given(payments())
def test_valid_payments_round_trip(body: dict[str, Any]) -> None:
    msg = parse_message(json.dumps(body))
    assert isinstance(msg, PaymentMsg)
    assert msg.amount > 0
    envelope = {k: body[k] for k in ("message_id", "type", "customer_id", "occurred_at")}
    again = parse_message(json.dumps({**envelope, **msg.to_payload()}).encode())
    assert again == msg
    assert again.fingerprint() == msg.fingerprint()
    moved = {
        **envelope,
        "occurred_at": msg.occurred_at.astimezone(UTC).isoformat(),
        "message_id": "other",
    }
    assert parse_message(json.dumps({**moved, **msg.to_payload()})).fingerprint() == (
        msg.fingerprint()
    )


def test_null_optional_means_default() -> None:
    msg = parse_message(raw("customer_registered", payment_terms_days=None, email=None))
    assert isinstance(msg, CustomerRegisteredMsg)
    assert msg.payment_terms_days == 30 and msg.email is None


def test_message_union_discriminates_on_type() -> None:
    from pydantic import TypeAdapter

    from ledger.messages import Message

    adapter: TypeAdapter[Message] = TypeAdapter(Message)
    assert isinstance(adapter.validate_python(doc("refund")), RefundMsg)


# ------------------------------------------------------------------ tax fields (SPEC §12)


def test_tax_fields_of_a_registration_are_read_and_checked() -> None:
    taxed = parse_message(raw(
        "customer_registered", tax_rate="8.875", tax_exempt=False, tax_id="IE1234567T",
        country="IE", address="1 Quay, Dublin",
    ))  # fmt: skip
    payload = taxed.to_payload()
    assert (payload["tax_rate"], payload["country"], payload["tax_exempt"]) == (
        "8.875",
        "IE",
        False,
    )
    for field, value in (("tax_rate", "100.5"), ("tax_rate", "-1"), ("tax_rate", 20),
                         ("country", "XX"), ("country", "ie"), ("tax_exempt", "no")):  # fmt: skip
        fails(raw("customer_registered", **{field: value}), "invalid_message", field)


def test_a_registration_without_tax_fields_keeps_its_fingerprint() -> None:
    """Tax fields absent are left out of the fingerprint: a registration stored before them
    and re-sent is a duplicate, never a conflict."""
    plain = parse_message(raw("customer_registered")).fingerprint()
    nulls = parse_message(raw("customer_registered", tax_rate=None, country=None)).fingerprint()
    taxed = parse_message(raw("customer_registered", tax_rate="0")).fingerprint()
    assert plain == nulls != taxed


def test_a_write_off_needs_a_positive_amount_in_minor_units() -> None:
    fails(raw("write_off", amount="0.00"), "invalid_message", "amount")
    fails(raw("write_off", amount="1.001"), "invalid_message", "amount")
    fails(raw("write_off_reversed", write_off_id=DROP), "invalid_message", "write_off_id")
