# ruff: noqa: RUF001 - non-ASCII digits and letters are what these tests feed the validators
"""Issue #13 kinds 1 and 4, #14 kind 3: precision rules that name the real limit (SPEC §2),
GUID ids as one id in either case (SPEC §2), and validators that take only ASCII digits,
match the whole value and know the real ISO 4217 table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer

from ledger.app.application import LedgerApplication
from ledger.app.base import account_id_as_written
from ledger.app.reconcile import ReconFileError, ledger_charges, parse_recon_file, reconcile
from ledger.app.schedule import parse_at
from ledger.app.views import compute_view
from ledger.cli.options import parse_customer, parse_day, parse_period
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount, account_id
from ledger.domain.errors import InvalidMessage, LedgerError
from ledger.domain.ids import is_guid, normalize_id, normalize_invoice_id
from ledger.domain.money import check_currency, minor_unit, parse_decimal
from ledger.domain.policy import PolicyError, parse_policies
from ledger.domain.stream import Meta
from ledger.messages import parse_message
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import charge, customer_registered, msgs, payment

UPPER = "74221236-D09C-4870-AC1D-33E155E9AEBE"
LOWER = UPPER.lower()
SUB_UPPER = "A1B2C3D4-0000-4000-8000-ABCDEF012345"
NOW = datetime(2026, 2, 20, 12, 0, tzinfo=UTC)

# The instance of #13.1: Microsoft's usage price carries 13 decimals.
USAGE = {"quantity": "24", "unit_price": "1.2799888920023", "amount": "30.72", "cost": "30.71",
         "charge_type": "usage"}  # fmt: skip


def refused(raw: str, field: str) -> LedgerError:
    with pytest.raises(LedgerError) as info:
        parse_message(raw)
    assert info.value.code == "invalid_message", info.value.message
    assert info.value.field == field, info.value.message
    return info.value


def app(url: str = "memory://") -> LedgerApplication:
    return LedgerApplication(eventsourcing_env(url), clock=lambda: NOW)


# ---- 1. precision ----------------------------------------------------------------------------


def test_a_usage_price_with_13_decimals_is_accepted_and_kept_exactly() -> None:
    message = parse_message(charge("c1", "U-1", **USAGE))
    assert message.unit_price == Decimal("1.2799888920023")  # type: ignore[union-attr]
    assert message.to_payload()["unit_price"] == "1.2799888920023"
    ledger = app()
    outcomes = ledger.handle_batch(msgs([customer_registered("c1"), charge("c1", "U-1", **USAGE)]))
    assert [o.status for o in outcomes.outcomes] == ["applied", "applied"], outcomes.outcomes
    posted = [e for e in ledger.stream("c1") if isinstance(e, ev.ChargePosted)]
    assert posted[0].data["unit_price"] == "1.2799888920023"
    assert posted[0].data["quantity"] == "24"


@pytest.mark.parametrize("field", ["quantity", "unit_price"])
def test_plain_decimals_take_up_to_18_places_and_name_the_rule(field: str) -> None:
    assert parse_message(charge("c1", **{field: "0.0416667"}))
    assert parse_message(charge("c1", **{field: "0." + "9" * 18}))
    error = refused(charge("c1", **{field: "1." + "1" * 19}), field)
    assert error.message == f"{field}: 1.{'1' * 19} has 19 decimals, at most 18"
    assert "not a decimal number" not in error.message


@pytest.mark.parametrize(
    ("currency", "good", "bad", "rule"),
    [("USD", "10.01", "10.001", "has 3 decimals, at most 2 for USD"),
     ("JPY", "1000", "1000.5", "has 1 decimals, at most 0 for JPY"),
     ("KWD", "1.125", "1.1255", "has 4 decimals, at most 3 for KWD")],
)  # fmt: skip
def test_money_has_the_currencys_iso_minor_unit(
    currency: str, good: str, bad: str, rule: str
) -> None:
    assert parse_message(payment("c1", amount=good, currency=currency))
    error = refused(payment("c1", amount=bad, currency=currency), "amount")
    assert error.message == f"amount: {bad} {rule}"
    for field in ("amount", "cost"):
        fields = {"amount": good, "cost": good, "currency": currency, field: bad}
        error = refused(charge("c1", **fields), field)
        assert error.message == f"{field}: {bad} {rule}"


def test_minor_units_come_from_the_iso_table() -> None:
    assert (minor_unit("USD"), minor_unit("JPY"), minor_unit("KWD"), minor_unit("CLF")) == (
        2, 0, 3, 4,
    )  # fmt: skip
    assert minor_unit("ISK") == 0 and minor_unit("TND") == 3


def test_too_many_whole_digits_names_the_rule() -> None:
    error = refused(payment("c1", amount="1" + "0" * 15), "amount")
    big = "1" + "0" * 15
    assert error.message == f"amount: {big} has 16 digits before the decimal point, at most 15"


def test_a_microsoft_payment_with_more_decimals_than_the_currency_is_refused() -> None:
    # It was rounded half-even when stored: 10.005 became 10.00 without a word.
    ledger = app()
    ledger.handle_batch(msgs([customer_registered("c1"), charge("c1", "CH-1", "100.00")]))
    with pytest.raises(InvalidMessage, match=r"amount: 10\.005 has 3 decimals, at most 2 for USD"):
        ledger.pay_microsoft("2025-01", Decimal("10.005"), "W-1", date(2025, 3, 1), "USD")


# ---- 3. validators --------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["٢٠٢٦-01", "2026-01\n", "２０２６-01", "2026-1", "2026-13"])
def test_billing_period_is_ascii_yyyy_mm_and_nothing_else(period: str) -> None:
    dates = {"charge_start": "2026-01-01", "charge_end": "2026-01-31"}
    error = refused(charge("c1", billing_period=period, **dates), "billing_period")
    assert error.message.startswith("billing_period:") and ";" not in error.message


@pytest.mark.parametrize("customer_id", ["c-nl\n", "c\u0663", "c nl", "x" * 65])
def test_customer_id_is_the_whole_value(customer_id: str) -> None:
    refused(customer_registered(customer_id), "customer_id")


@pytest.mark.parametrize("currency", ["ZZZ", "XAU", "XXX", "usd", "USD\n", "ＵＳＤ"])
def test_currency_must_be_an_iso_4217_billing_currency(currency: str) -> None:
    error = refused(customer_registered("c1", currency=currency), "currency")
    assert "ISO 4217" in error.message
    refused(payment("c1", currency=currency), "currency")


@pytest.mark.parametrize(
    ("field", "value"),
    [("occurred_at", "٢٠٢٦-01-15T10:00:00Z"), ("occurred_at", "2026-01-15T10:00:00Z\n"),
     ("occurred_at", "2026-01-15T10:00:00+01:00\n"), ("charge_start", "2025-01-01\n"),
     ("charge_start", "٢٠٢٥-01-01"), ("charge_end", "20250128"), ("quantity", "١"),
     ("unit_price", "1.5\n"), ("unit_price", "1e3"), ("unit_price", "NaN")],
)  # fmt: skip
def test_dates_timestamps_and_decimals_are_ascii_and_whole(field: str, value: str) -> None:
    refused(charge("c1", **{field: value}), field)


def test_an_email_with_a_final_newline_is_refused() -> None:
    refused(customer_registered("c1", email="ap@example.com\n"), "email")


def test_money_parsing_refuses_non_ascii_digits() -> None:
    with pytest.raises(InvalidMessage, match="not a decimal number"):
        parse_decimal("١٢.٥٠", "amount")
    with pytest.raises(InvalidMessage):
        check_currency("ZZZ")


@pytest.mark.parametrize("value", ["٢٠٢٦-01", "2026-1", "2026-01\n", "2026-00"])
def test_cli_period_options_are_strict(value: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_period(value)
    assert parse_period("2026-01") == "2026-01"


@pytest.mark.parametrize("value", ["20260115", "2026-W03-4", "٢٠٢٦-01-15", "2026-01-15\n"])
def test_cli_date_options_are_strict(value: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_day(value, "--as-of")
    assert parse_day("2026-01-15", "--as-of") == date(2026, 1, 15)


def test_schedule_time_and_policy_names_are_ascii_and_whole() -> None:
    with pytest.raises(ValueError):
        parse_at("٠٦:٠٥")
    assert parse_at("06:05").hour == 6
    with pytest.raises(PolicyError):
        parse_policies({"policies": {"soft\n": {"reinstatement": "paid_in_full",
                       "steps": [{"days_past_due": 7, "action": "reminder"}]}}})  # fmt: skip


def test_a_conflict_names_the_field_that_differs() -> None:
    ledger = app()
    first = [customer_registered("c1"), payment("c1", "P-1", "10.00")]
    ledger.handle_batch(msgs(first))
    result = ledger.handle_batch(msgs([
        payment("c1", "P-1", "11.00", message_id="again"),
        customer_registered("c1", message_id="reg-2", name="Other Ltd"),
    ]))  # fmt: skip
    errors = [o.error for o in result.outcomes]
    assert [(e.code, e.field) for e in errors if e] == [
        ("conflict", "amount"), ("conflict", "name"),
    ]  # fmt: skip
    assert errors[0] is not None and "differs in amount" in errors[0].message
    assert errors[1] is not None and "differs in name" in errors[1].message


# ---- 4. GUIDs ---------------------------------------------------------------------------------


def test_normalize_id_lowers_guids_only() -> None:
    assert normalize_id(UPPER) == LOWER and normalize_id(LOWER) == LOWER
    assert normalize_id("Contoso-EU") == "Contoso-EU"  # a partner's own key: as given
    assert normalize_id(UPPER + "0") == UPPER + "0"
    assert is_guid(UPPER) and not is_guid(UPPER + "\n") and not is_guid("x" + UPPER[1:] + "\n")
    assert account_id(UPPER) == account_id(LOWER)


def test_messages_keep_guids_in_lower_case_and_accept_either_key() -> None:
    raw = charge(UPPER, "CH-1", subscription_id=SUB_UPPER)
    message = parse_message(raw, key=UPPER.encode())
    assert message.customer_id == LOWER
    assert message.subscription_id == SUB_UPPER.lower()  # type: ignore[union-attr]
    assert (
        parse_message(raw, key=LOWER).fingerprint()
        == parse_message(charge(LOWER, "CH-1", subscription_id=SUB_UPPER.lower())).fingerprint()
    )


def test_a_payment_in_lower_case_reaches_a_customer_registered_in_upper_case() -> None:
    ledger = app()
    result = ledger.handle_batch(msgs([
        customer_registered(UPPER, name="N"), charge(UPPER, "CH-1", "100.00"),
        payment(LOWER, "P-1", "40.00"), customer_registered(LOWER, message_id="x", name="N"),
    ]))  # fmt: skip
    assert [o.status for o in result.outcomes] == ["applied", "applied", "applied", "duplicate"]
    assert ledger.customer_ids() == [LOWER]
    rows = compute_view(ledger, "balances", date(2026, 2, 20), customer_id=UPPER)
    assert [(r["customer_id"], r["paid"]) for r in rows] == [(LOWER, "40.00")]


def test_a_payment_naming_an_invoice_in_the_other_case_settles_that_invoice() -> None:
    ledger = app()
    ledger.handle_batch(msgs([
        customer_registered(LOWER, name="N"),
        charge(LOWER, "CH-1", "100.00", billing_period="2026-01"),
        charge(LOWER, "CH-2", "50.00", billing_period="2026-02"),
    ]))  # fmt: skip
    ledger.run_invoices("2026-01", date(2026, 2, 1))
    ledger.run_invoices("2026-02", date(2026, 3, 1))
    named = f"INV-{UPPER}-2026-02"  # the newer invoice, named in upper case
    assert normalize_invoice_id(named) == f"INV-{LOWER}-2026-02"
    assert normalize_invoice_id("INV-tenant-1-2026-02") == "INV-tenant-1-2026-02"
    outcome = ledger.handle_batch(msgs([payment(UPPER, "P-1", "50.00", invoice_id=named)]))
    assert outcome.outcomes[0].status == "applied"
    invoices = ledger.get(LOWER).invoices
    assert invoices[f"INV-{LOWER}-2026-02"].remainder == 0  # not the oldest one
    assert invoices[f"INV-{LOWER}-2026-01"].remainder == Decimal("100.00")


def legacy_store(url: str = "memory://") -> LedgerApplication:
    """A store written before SPEC §2: the stream id derives from the upper-case spelling."""
    ledger = app(url)
    message = parse_message(customer_registered(LOWER, name="N"))
    data = dict(message.to_payload(), customer_id=UPPER, fingerprint=message.fingerprint())
    meta = Meta(occurred_at=message.occurred_at, recorded_at=NOW, message_id="reg-legacy",
                fingerprint=message.fingerprint())  # fmt: skip
    account = CustomerAccount._start(ev.CustomerRegistered, account_id_as_written(UPPER), UPPER,
                                     data, meta)  # fmt: skip
    ledger.save(account)
    assert account_id_as_written(UPPER) != account_id(UPPER)
    return ledger


def test_a_customer_registered_in_upper_case_before_the_rule_is_still_found(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    ledger = legacy_store(url)
    again = app(url)  # a fresh process on the same store must find it too
    for each in (ledger, again):
        found = each.find(LOWER)
        assert found is not None and found.id == account_id_as_written(UPPER)
        assert each.find(UPPER) is not None
    result = again.handle_batch(msgs([
        charge(LOWER, "CH-1", "100.00"), payment(UPPER, "P-1", "40.00"),
        customer_registered(UPPER, message_id="reg-later", name="N"),
    ]))  # fmt: skip
    assert [o.status for o in result.outcomes] == ["applied", "applied", "duplicate"], [
        o.error for o in result.outcomes
    ]
    assert [type(e).__name__ for e in again.stream(LOWER)] == [
        "CustomerRegistered", "ChargePosted", "PaymentReceived",
    ]  # fmt: skip
    assert again.recorder.select_events(account_id(LOWER)) == []  # no second customer
    rows = compute_view(again, "balances", date(2026, 2, 20), customer_id=LOWER)
    assert [(r["customer_id"], r["paid"], r["unbilled"]) for r in rows] == [
        (LOWER, "40.00", "100.00")
    ]
    assert again.customer_ids() == [LOWER]


RECON_HEADER = ("InvoiceNumber,CustomerId,SubscriptionId,ChargeType,ChargeStartDate,ChargeEndDate,"
                "Subtotal,Currency\n")  # fmt: skip


def test_reconciliation_matches_guids_in_either_case_on_both_sides() -> None:
    ledger = app()
    ledger.handle_batch(msgs([
        customer_registered(UPPER),
        charge(UPPER, "CH-1", "100.00", subscription_id=SUB_UPPER, billing_period="2026-01",
               charge_start="2026-01-01", charge_end="2026-01-31"),
    ]))  # fmt: skip
    line = f"G1,{LOWER},{SUB_UPPER.lower()},cycleCharge,2026-01-01,2026-01-31,80.00,USD\n"
    report = reconcile(parse_recon_file((RECON_HEADER + line).encode()),
                       ledger_charges(ledger.charge_events()))  # fmt: skip
    doc = report.to_json()
    assert (doc["matched"], doc["missing_in_ledger"], doc["missing_on_invoice"]) == (1, [], [])
    upper_line = f"G1,{UPPER},{SUB_UPPER},cycleCharge,2026-01-01,2026-01-31,80.00,USD\n"
    assert reconcile(parse_recon_file((RECON_HEADER + upper_line).encode()),
                     ledger_charges(ledger.charge_events())).matched == 1  # fmt: skip


def test_reconciliation_of_a_legacy_upper_case_customer_matches_a_lower_case_line() -> None:
    ledger = legacy_store()
    ledger.handle_batch(
        msgs(
            [
                charge(
                    LOWER,
                    "CH-1",
                    "100.00",
                    billing_period="2026-01",
                    charge_start="2026-01-01",
                    charge_end="2026-01-31",
                )
            ]
        )
    )
    sub = f"sub-{LOWER}-1"
    line = f"G1,{LOWER},{sub},cycleCharge,2026-01-01,2026-01-31,80.00,USD\n"
    report = reconcile(parse_recon_file((RECON_HEADER + line).encode()),
                       ledger_charges(ledger.charge_events()))  # fmt: skip
    assert (report.matched, report.to_json()["missing_on_invoice"]) == (1, [])


@pytest.mark.parametrize(
    ("cell", "value", "message"),
    [("Subtotal", "١٠.٠٠", "is not a number"), ("Subtotal", "10.001", "at most 2 for USD"),
     ("Currency", "ZZZ", "not an ISO 4217 code"),
     ("ChargeStartDate", "٢٠٢٦-01-01", "is not a date")],
)  # fmt: skip
def test_reconciliation_cells_are_ascii_and_iso(cell: str, value: str, message: str) -> None:
    cells = {"InvoiceNumber": "G1", "CustomerId": LOWER, "SubscriptionId": "s",
             "ChargeType": "usage", "ChargeStartDate": "2026-01-01",
             "ChargeEndDate": "2026-01-31", "Subtotal": "10.00", "Currency": "USD"}  # fmt: skip
    cells[cell] = value
    raw = (RECON_HEADER + ",".join(cells.values()) + "\n").encode()
    with pytest.raises(ReconFileError, match=message) as info:
        parse_recon_file(raw)
    assert info.value.column == cell


def test_cli_customer_option_reads_a_guid_in_lower_case() -> None:
    assert parse_customer(UPPER) == LOWER and parse_customer("Contoso") == "Contoso"
    assert parse_customer(None) is None


# ---- end to end through `ledger ingest` -----------------------------------------------------


JANUARY = {"charge_start": "2026-01-01", "charge_end": "2026-01-31"}


def test_ingest_end_to_end(tmp_path: Path) -> None:
    from tests.helpers import jsonl, run_cli

    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    lines = [
        customer_registered(UPPER),
        charge(UPPER, "U-1", subscription_id=SUB_UPPER, **USAGE),
        charge(UPPER, "U-2", quantity="0.0416667", unit_price="1.00", amount="0.04", cost="0.03"),
        payment(LOWER, "P-1", "30.00"),
        charge(UPPER, "BAD-1", billing_period="٢٠٢٦-01", **JANUARY),
        charge(UPPER, "BAD-2", billing_period="2026-01\n", **JANUARY),
        customer_registered("c-nl\n"),
        customer_registered("c-zzz", currency="ZZZ"),
        charge(UPPER, "BAD-3", unit_price="1." + "1" * 19),
    ]
    (tmp_path / "in.jsonl").write_text(jsonl(lines), encoding="utf-8")
    result = run_cli(url, "ingest", str(tmp_path / "in.jsonl"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    letters = json.loads(run_cli(url, "deadletters", "list", "--json", cwd=tmp_path).stdout)
    reasons = sorted(letter["message"] for letter in letters)
    assert len(letters) == 5 and all(letter["code"] == "invalid_message" for letter in letters)
    assert any(r.startswith("billing_period: '٢٠٢٦-01'") for r in reasons), reasons
    assert any(r.startswith("billing_period: '2026-01\\n'") for r in reasons), reasons
    assert any(r.startswith("customer_id: 'c-nl\\n'") for r in reasons), reasons
    assert "currency: 'ZZZ' is not an ISO 4217 code" in reasons
    assert f"unit_price: 1.{'1' * 19} has 19 decimals, at most 18" in reasons
    shown = run_cli(url, "show", "balances", "--customer", UPPER, "--json", cwd=tmp_path)
    rows: list[dict[str, Any]] = json.loads(shown.stdout)
    assert [(r["customer_id"], r["unbilled"], r["unapplied_credit"]) for r in rows] == [
        (LOWER, "30.76", "30.00")
    ], shown.stderr


@pytest.mark.parametrize("legacy", [False, True])
def test_api_paths_take_a_guid_in_either_case(tmp_path: Path, legacy: bool) -> None:
    from tests.unit.test_api import build_api

    ledger = legacy_store() if legacy else app()
    first = [] if legacy else [customer_registered(UPPER, name="N")]
    ledger.handle_batch(msgs([*first, charge(UPPER, "CH-1", "100.00")]))
    api = build_api(tmp_path, ledger)
    for spelled in (UPPER, LOWER):
        assert api.ok(f"/customers/{spelled}")["customer_id"] == LOWER
        balance = api.ok(f"/customers/{spelled}/balance")
        assert (balance["customer_id"], balance["unbilled"]) == (LOWER, "100.00")
        events = api.ok(f"/customers/{spelled}/events")["items"]
        assert [e["customer_id"] for e in events] == [LOWER, LOWER]
    assert api.get("/customers/c-nl%0A").status_code == 422


def test_a_dead_letter_replayed_after_registration_in_the_other_case_applies(
    tmp_path: Path,
) -> None:
    from tests.helpers import jsonl, run_cli

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    (tmp_path / "early.jsonl").write_text(jsonl([payment(LOWER, "P-1", "25.00")]), "utf-8")
    (tmp_path / "reg.jsonl").write_text(jsonl([customer_registered(UPPER)]), "utf-8")
    for name in ("early", "reg"):
        done = run_cli(url, "ingest", str(tmp_path / f"{name}.jsonl"), cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    replayed = run_cli(url, "deadletters", "replay", cwd=tmp_path)
    assert "replayed 1, still failing 0" in replayed.stdout, (replayed.stdout, replayed.stderr)
    shown = run_cli(url, "show", "balances", "--customer", LOWER, "--json", cwd=tmp_path)
    rows = json.loads(shown.stdout)
    assert [(r["customer_id"], r["unapplied_credit"]) for r in rows] == [(LOWER, "25.00")]


def test_a_subscription_stored_in_upper_case_and_charged_in_lower_case_is_one() -> None:
    ledger = legacy_store()
    account = ledger.find(LOWER)
    assert account is not None
    old = parse_message(charge(LOWER, "CH-0", "10.00", subscription_id=SUB_UPPER))
    stored = dict(old.to_payload(), subscription_id=SUB_UPPER)  # as written before SPEC §2
    account._emit(
        ev.ChargePosted,
        stored,
        Meta(
            occurred_at=old.occurred_at,
            recorded_at=NOW,
            message_id="old",
            fingerprint=old.fingerprint(),
        ),
        caused_by_message=True,
    )
    ledger.save(account)
    ledger.handle_batch(msgs([charge(LOWER, "CH-1", "10.00", subscription_id=SUB_UPPER)]))
    again = ledger.find(UPPER)
    assert again is not None and list(again.subscriptions) == [SUB_UPPER.lower()]


@pytest.mark.parametrize(
    ("field", "value"),
    [("charge_id", "CH-1\n"), ("subscription_id", "sub\t1"), ("ms_invoice_number", "G1\x00"),
     ("product_id", "CFQ7\x85")],
)  # fmt: skip
def test_ids_refuse_control_characters(field: str, value: str) -> None:
    error = refused(charge("c1", **{field: value}), field)
    assert "control characters" in error.message
