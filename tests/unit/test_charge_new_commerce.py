"""Microsoft's new-commerce charges (SPEC §3, §10): the new charge types and fields, their
journal (cost in Microsoft's currency, revenue in the customer's) and their reconciliation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.reconcile import ReconFile, ReconLine, ledger_charges, reconcile
from ledger.app.views import compute_view
from ledger.domain.errors import LedgerError
from ledger.domain.postings import COST_OF_SALES, PAYABLE_MICROSOFT, postings_for
from ledger.messages import ChargeMsg, parse_message
from ledger.store.eventstore import eventsourcing_env
from tests import helpers as h

RECORDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def charge(**fields: Any) -> ChargeMsg:
    message = parse_message(h.charge("c1", fields.pop("charge_id", "CH-1"),
                                     fields.pop("amount", "100.00"), **fields))  # fmt: skip
    assert isinstance(message, ChargeMsg)
    return message


def refused(field: str, **fields: Any) -> str:
    with pytest.raises(LedgerError) as caught:
        charge(**fields)
    assert caught.value.code == "invalid_message"
    assert caught.value.field == field, caught.value.message
    return caught.value.message


@pytest.mark.parametrize("kind", ["add_quantity", "remove_quantity", "convert",
                                  "customer_credit"])  # fmt: skip
def test_the_new_charge_types_are_accepted(kind: str) -> None:
    assert charge(charge_type=kind).charge_type == kind


@pytest.mark.parametrize("kind", ["remove_quantity", "customer_credit", "convert"])
def test_credit_bearing_types_may_be_negative(kind: str) -> None:
    message = charge(charge_type=kind, amount="-14.19", cost="-12.34", quantity="-1")
    assert (message.amount, message.cost) == (Decimal("-14.19"), Decimal("-12.34"))


@pytest.mark.parametrize("kind", ["new", "add_quantity", "cycle", "usage"])
def test_other_types_may_not_be_negative(kind: str) -> None:
    assert "remove_quantity" in refused("amount", charge_type=kind, amount="-1.00",
                                        cost="0.00")  # fmt: skip


def test_new_fields_are_kept_and_optional() -> None:
    message = charge(currency="EUR", amount="101.20", cost="100.00", cost_currency="USD",
                     cost_fx_rate="0.92", ms_charge_type="cycleCharge")  # fmt: skip
    payload = message.to_payload()
    assert (payload["cost_currency"], payload["cost_fx_rate"], payload["ms_charge_type"]) == (
        "USD", "0.92", "cycleCharge",
    )  # fmt: skip
    plain = charge().to_payload()
    assert (plain["cost_currency"], plain["cost_fx_rate"], plain["ms_charge_type"]) == (
        None, None, None,
    )  # fmt: skip


def test_the_new_fields_change_the_fingerprint_only_when_given() -> None:
    assert (
        charge().fingerprint()
        == parse_message(h.charge("c1", "CH-1", "100.00", cost_fx_rate=None)).fingerprint()
    )
    assert charge().fingerprint() != charge(ms_charge_type="cycleCharge").fingerprint()


def test_a_rate_is_required_when_the_cost_currency_differs() -> None:
    message = refused("cost_fx_rate", currency="EUR", cost_currency="USD")
    assert "cost_currency USD differs from currency EUR" in message
    assert "must be > 0" in refused("cost_fx_rate", currency="EUR", cost_currency="USD",
                                    cost_fx_rate="0")  # fmt: skip
    # The same currency spelled out needs no rate.
    assert charge(cost_currency="USD").cost_fx_rate is None


def test_cost_fits_the_cost_currency_and_amount_the_customer_currency() -> None:
    assert "JPY" in refused("cost", cost_currency="JPY", cost_fx_rate="0.0067", cost="150.5")
    ok = charge(cost_currency="JPY", cost_fx_rate="0.0067", cost="15000")
    assert ok.cost == Decimal(15000)


# ---- journal ---------------------------------------------------------------------------------


def test_cost_posts_in_the_cost_currency_and_revenue_in_the_customer_currency() -> None:
    data = charge(currency="EUR", amount="101.20", cost="100.00", cost_currency="USD",
                  cost_fx_rate="0.92").to_payload()  # fmt: skip
    lines = postings_for("ChargePosted", "c1", "EUR", data)
    by_account = {(p.account, p.currency): p.debit - p.credit for p in lines}
    assert by_account[(COST_OF_SALES, "USD")] == Decimal("100.00")
    assert by_account[(PAYABLE_MICROSOFT, "USD")] == Decimal("-100.00")
    assert by_account[("revenue", "EUR")] == Decimal("-101.20")
    for currency in ("EUR", "USD"):
        assert sum(v for (_, cur), v in by_account.items() if cur == currency) == 0


def test_each_currencys_trial_balance_stays_zero_through_invoicing() -> None:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    raws = [
        h.customer_registered("c1", currency="EUR"),
        h.charge("c1", "CH-1", "101.20", currency="EUR", cost="100.00", cost_currency="USD",
                 cost_fx_rate="0.92"),
        h.charge("c1", "CH-2", "-9.20", currency="EUR", cost="-8.00", cost_currency="USD",
                 cost_fx_rate="0.92", charge_type="remove_quantity", quantity="-1"),
    ]  # fmt: skip
    assert app.handle_batch(h.msgs(raws)).count("applied") == 3
    app.run_invoices("2025-01", date(2025, 2, 1))
    rows = compute_view(app, "trial-balance", date(2025, 3, 1))
    totals: dict[str, Decimal] = {}
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + Decimal(row["balance"])
    assert totals == {"EUR": 0, "USD": 0}
    usd = {r["account"]: r["balance"] for r in rows if r["currency"] == "USD"}
    assert usd == {COST_OF_SALES: "92.00", PAYABLE_MICROSOFT: "-92.00"}


# ---- reconciliation --------------------------------------------------------------------------


def line(number: int, ms_type: str, ours: str | None, subtotal: str) -> ReconLine:
    return ReconLine(number, "c1", "sub-c1-1", "CFQ7TTC0LH18", "0001", ms_type, ours,
                     date(2025, 1, 1), date(2025, 1, 28), Decimal(subtotal))  # fmt: skip


def charges_of(app: LedgerApplication) -> Any:
    return ledger_charges(app.charge_events())


def test_new_type_lines_match_charges_of_the_new_types_and_of_the_legacy_ones() -> None:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    raws = [
        h.customer_registered("c1"),
        h.charge("c1", "RQ", "-14.19", cost="-12.34", charge_type="remove_quantity",
                 quantity="-1"),
        h.charge("c1", "AQ-LEGACY", "20.00", cost="16.00", charge_type="new"),
        h.charge("c1", "CC", "-5.00", cost="-5.00", charge_type="customer_credit"),
        h.charge("c1", "CV", "30.00", cost="24.00", charge_type="convert"),
        h.charge("c1", "CV-LEGACY", "-6.00", cost="-5.00", charge_type="cancel_refund",
                 quantity="-1"),
    ]  # fmt: skip
    assert app.handle_batch(h.msgs(raws)).count("applied") == len(raws)
    lines = [
        line(2, "removeQuantity", "remove_quantity", "-12.34"),
        line(3, "addQuantity", "add_quantity", "16.00"),
        line(4, "customerCredit", "customer_credit", "-5.00"),
        line(5, "convert", "convert", "24.00"),
        line(6, "convert", "convert", "-5.00"),
    ]
    recon = ReconFile("INV-1", "USD", lines, "sha")
    report = reconcile(recon, charges_of(app), "2025-01").to_json()
    assert report["matched"] == 5
    assert report["missing_in_ledger"] == report["missing_on_invoice"] == []
    assert report["amount_mismatches"] == []


def test_an_exact_type_is_preferred_to_a_legacy_one_and_a_charge_is_taken_once() -> None:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    raws = [
        h.customer_registered("c1"),
        h.charge("c1", "AQ", "20.00", cost="16.00", charge_type="add_quantity"),
        h.charge("c1", "NEW", "20.00", cost="16.00", charge_type="new"),
    ]  # fmt: skip
    app.handle_batch(h.msgs(raws))
    lines = [line(2, "new", "new", "16.00"), line(3, "addQuantity", "add_quantity", "16.00")]
    report = reconcile(ReconFile("INV-1", "USD", lines, "sha"), charges_of(app), "2025-01")
    assert [(r.line.line if r.line else None, r.charge.charge_id if r.charge else None)
            for r in report.results] == [(2, "NEW"), (3, "AQ")]  # fmt: skip


def test_a_charge_billed_in_another_currency_matches_on_its_cost_currency() -> None:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    raws = [
        h.customer_registered("c1", currency="EUR"),
        h.charge("c1", "CH-1", "101.20", currency="EUR", cost="100.00", cost_currency="USD",
                 cost_fx_rate="0.92"),
    ]  # fmt: skip
    app.handle_batch(h.msgs(raws))
    recon = ReconFile("INV-1", "USD", [line(2, "cycleCharge", "cycle", "100.00")], "sha")
    report = reconcile(recon, charges_of(app), "2025-01").to_json()
    assert report["matched"] == 1 and report["missing_on_invoice"] == []
