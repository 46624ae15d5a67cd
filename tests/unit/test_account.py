"""The CustomerAccount rules of SPEC §4 driven through LedgerApplication (in memory), checked
on the SPEC §6 views (`balances`, `trial-balance`) and on the aggregate itself."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.batching import Outcome
from ledger.app.reconcile import day_after as _day_after
from ledger.app.views import compute_view
from ledger.domain import events as ev
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    charge,
    credit_note,
    customer_registered,
    customer_updated,
    msg,
    payment,
    payment_reversed,
    refund,
    support_escalated,
    support_interaction,
    support_ticket_opened,
    support_ticket_resolved,
)

C = "contoso"
RECORDED = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
LOOK_DAY = date(2025, 3, 10)

BALANCE_FIELDS = {
    "customer_id", "name", "currency", "billed", "unbilled", "paid", "credited", "refunded",
    "written_off", "outstanding", "unapplied_credit", "balance", "overdue", "days_past_due",
    "aging", "status", "last_payment_date",
}  # fmt: skip
AGING_FIELDS = {"current", "d1_30", "d31_60", "d61_90", "d90_plus"}


# ---- helpers ------------------------------------------------------------------------------


@pytest.fixture
def app() -> LedgerApplication:
    return LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)


def handle(app: LedgerApplication, *raws: str) -> list[Outcome]:
    return app.handle_batch([msg(r) for r in raws]).outcomes


def apply_all(app: LedgerApplication, *raws: str) -> None:
    outcomes = handle(app, *raws)
    refused = [(r, o.error) for r, o in zip(raws, outcomes, strict=True) if o.status != "applied"]
    assert not refused, refused


def at(day: str) -> str:
    return f"{day}T10:00:00Z"


def period_charge(charge_id: str, amount: str, period: str, **fields: Any) -> str:
    """A charge of `period`, posted mid-period (business time)."""
    return charge(C, charge_id, amount, billing_period=period, occurred_at=at(f"{period}-15"),
                  **fields)  # fmt: skip


def billed(app: LedgerApplication, *charges: tuple[str, str, str]) -> LedgerApplication:
    """Register contoso (30 days' terms) and invoice each (charge id, amount, period) on the
    first day after its period: one invoice per period, INV-contoso-<period>."""
    apply_all(app, customer_registered(C, occurred_at=at("2024-01-02")))
    for charge_id, amount, period in charges:
        apply_all(app, period_charge(charge_id, amount, period))
        assert app.run_invoices(period, _day_after(period)) == [f"INV-{C}-{period}"]
    return app


def balance(
    app: LedgerApplication, as_of: date = LOOK_DAY, customer: str = C, historical: bool = False
) -> dict[str, Any]:
    rows = compute_view(app, "balances", as_of, historical=historical, customer_id=customer)
    assert len(rows) == 1, rows
    return rows[0]


def trial_balance(app: LedgerApplication, as_of: date = LOOK_DAY) -> dict[str, Decimal]:
    """Account -> balance (debit - credit); also checks debits == credits per currency."""
    rows = compute_view(app, "trial-balance", as_of)
    by_currency: dict[str, tuple[Decimal, Decimal]] = {}
    for row in rows:
        debit, credit = by_currency.get(row["currency"], (Decimal(0), Decimal(0)))
        by_currency[row["currency"]] = (
            debit + Decimal(row["debit"]),
            credit + Decimal(row["credit"]),
        )
        assert Decimal(row["balance"]) == Decimal(row["debit"]) - Decimal(row["credit"])
    for currency, (debit, credit) in by_currency.items():
        assert debit == credit, f"{currency}: debits {debit} != credits {credit}"
    return {row["account"]: Decimal(row["balance"]) for row in rows}


def remainders(app: LedgerApplication, customer: str = C) -> dict[str, Decimal]:
    return {iid: inv.remainder for iid, inv in app.get(customer).invoices.items()}


def events_of(app: LedgerApplication, kind: type[ev.LedgerEvent]) -> list[dict[str, Any]]:
    return [e.data for e in app.stream(C) if isinstance(e, kind)]


def money(row: dict[str, Any], *fields: str) -> tuple[str, ...]:
    return tuple(row[f] for f in fields)


def codes(outcomes: Iterable[Outcome]) -> list[str | None]:
    return [o.error.code if o.error else o.status for o in outcomes]


JAN, FEB, MAR = "INV-contoso-2025-01", "INV-contoso-2025-02", "INV-contoso-2025-03"


# ---- payments -----------------------------------------------------------------------------


def test_partial_payment_leaves_the_rest_of_the_invoice_open(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "40.00", occurred_at=at("2025-02-10")))

    row = balance(app)
    assert money(row, "billed", "paid", "outstanding", "unapplied_credit", "balance") == (
        "100.00", "40.00", "60.00", "0.00", "60.00",
    )  # fmt: skip
    assert remainders(app) == {JAN: Decimal("60.00")}
    assert events_of(app, ev.PaymentApplied)[0]["amount"] == "40.00"
    assert row["last_payment_date"] == "2025-02-10"


def test_full_payment_closes_the_invoice(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "100.00", occurred_at=at("2025-02-10")))

    row = balance(app)
    assert money(row, "outstanding", "unapplied_credit", "balance", "overdue") == (
        "0.00", "0.00", "0.00", "0.00",
    )  # fmt: skip
    assert remainders(app) == {JAN: Decimal(0)}
    assert app.get(C).open_invoices() == []


def test_overpayment_leaves_unapplied_credit(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "130.00", occurred_at=at("2025-02-10")))

    row = balance(app)
    assert money(row, "paid", "outstanding", "unapplied_credit", "balance") == (
        "130.00", "0.00", "30.00", "-30.00",
    )  # fmt: skip
    assert app.get(C).unapplied_credit() == Decimal("30.00")
    accounts = trial_balance(app)
    assert accounts[f"accounts_receivable:{C}"] == 0
    assert accounts[f"unapplied_cash_and_credits:{C}"] == Decimal("-30.00")
    assert accounts["cash"] == Decimal("130.00")


def test_unapplied_credit_settles_the_next_invoice_as_soon_as_it_is_issued(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "130.00", occurred_at=at("2025-02-10")))
    apply_all(app, period_charge("CH-2", "50.00", "2025-02"))

    assert app.run_invoices("2025-02", date(2025, 3, 1)) == [FEB]

    assert remainders(app) == {JAN: Decimal(0), FEB: Decimal("20.00")}
    applied = events_of(app, ev.PaymentApplied)[-1]
    assert (applied["source_id"], applied["invoice_id"], applied["amount"]) == ("P1", FEB, "30.00")
    row = balance(app)
    assert money(row, "billed", "outstanding", "unapplied_credit", "balance") == (
        "150.00", "20.00", "0.00", "20.00",
    )  # fmt: skip


def test_payment_naming_an_invoice_settles_it_first_then_the_oldest_due(
    app: LedgerApplication,
) -> None:
    billed(
        app,
        ("CH-1", "100.00", "2025-01"),  # due 2025-03-03
        ("CH-2", "50.00", "2025-02"),  # due 2025-03-31
        ("CH-3", "70.00", "2025-03"),  # due 2025-05-01
    )
    apply_all(app, payment(C, "P1", "120.00", invoice_id=MAR, occurred_at=at("2025-04-02")))

    # 70 to the named March invoice, the other 50 to the oldest due (January), none to February.
    assert remainders(app) == {JAN: Decimal("50.00"), FEB: Decimal("50.00"), MAR: Decimal(0)}
    assert [(a["invoice_id"], a["amount"]) for a in events_of(app, ev.PaymentApplied)] == [
        (MAR, "70.00"),
        (JAN, "50.00"),
    ]


def test_payment_without_invoice_settles_the_oldest_due_first(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"), ("CH-2", "50.00", "2025-02"))
    apply_all(app, payment(C, "P1", "120.00", occurred_at=at("2025-03-05")))

    assert remainders(app) == {JAN: Decimal(0), FEB: Decimal("30.00")}


def test_reversal_reopens_the_invoices_it_settled(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"), ("CH-2", "50.00", "2025-02"))
    apply_all(
        app,
        payment(C, "P0", "20.00", occurred_at=at("2025-03-02")),  # 20 of January
        payment(C, "P1", "160.00", occurred_at=at("2025-03-05")),  # 80 Jan + 50 Feb + 30 left
    )
    assert remainders(app) == {JAN: 0, FEB: 0}
    assert app.get(C).unapplied_credit() == Decimal("30.00")

    apply_all(app, payment_reversed(C, "P1", occurred_at=at("2025-03-08")))

    # Exactly what P1 settled reopens; P0's 20 stays applied; P1's 30 of credit is gone.
    assert remainders(app) == {JAN: Decimal("80.00"), FEB: Decimal("50.00")}
    assert app.get(C).unapplied_credit() == 0
    assert sorted((u["invoice_id"], u["amount"]) for u in events_of(app, ev.PaymentUnapplied)) == [
        (JAN, "80.00"),
        (FEB, "50.00"),
    ]
    reversed_ = events_of(app, ev.PaymentReversed)[0]
    assert (reversed_["amount"], reversed_["unapplied_removed"]) == ("160.00", "160.00")
    row = balance(app)
    assert money(row, "paid", "outstanding", "unapplied_credit", "balance", "overdue") == (
        "20.00", "130.00", "0.00", "130.00", "80.00",
    )  # fmt: skip
    accounts = trial_balance(app)
    assert accounts[f"accounts_receivable:{C}"] == Decimal("130.00")
    assert accounts[f"unapplied_cash_and_credits:{C}"] == 0
    assert accounts["cash"] == Decimal("20.00")


def test_reversal_removes_credit_that_a_later_invoice_consumed(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "130.00", occurred_at=at("2025-02-10")))
    apply_all(app, period_charge("CH-2", "50.00", "2025-02"))
    app.run_invoices("2025-02", date(2025, 3, 1))  # P1's 30 of credit goes to February

    apply_all(app, payment_reversed(C, "P1", occurred_at=at("2025-03-05")))

    assert remainders(app) == {JAN: Decimal("100.00"), FEB: Decimal("50.00")}
    assert money(balance(app), "outstanding", "unapplied_credit", "paid") == (
        "150.00", "0.00", "0.00",
    )  # fmt: skip


def test_reversal_of_a_payment_already_refunded_raises_a_debit_memo(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(
        app,
        payment(C, "P1", "130.00", occurred_at=at("2025-02-10")),
        refund(C, "R1", "30.00", occurred_at=at("2025-02-11")),
        payment_reversed(C, "P1", occurred_at=at("2025-02-20")),
    )
    # The invoice reopens, and the 30 already paid back out is owed again.
    assert remainders(app) == {JAN: Decimal("100.00"), "DM-P1": Decimal("30.00")}
    row = balance(app)
    assert money(row, "paid", "refunded", "outstanding", "unapplied_credit") == (
        "0.00", "30.00", "130.00", "0.00",
    )  # fmt: skip
    accounts = trial_balance(app)
    assert accounts[f"accounts_receivable:{C}"] == Decimal("130.00")
    assert accounts["cash"] == Decimal("-30.00")


def test_second_reversal_of_a_payment_is_a_duplicate_or_a_conflict(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, payment(C, "P1", "100.00"), payment_reversed(C, "P1"))
    events_before = len(app.stream(C))

    outcomes = handle(
        app,
        payment_reversed(C, "P1", message_id="rev-again"),  # same fact, new message id
        payment_reversed(C, "P1", message_id="rev-other", reason="error"),
    )

    assert codes(outcomes) == ["duplicate", "conflict"]
    assert len(app.stream(C)) == events_before
    assert remainders(app) == {JAN: Decimal("100.00")}


def test_reversing_an_unknown_payment_is_refused(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    [outcome] = handle(app, payment_reversed(C, "NOPE"))
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.field) == ("unknown_reference", "payment_id")


# ---- credit notes and refunds -------------------------------------------------------------


def test_credit_note_settles_the_invoice_like_a_payment(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"), ("CH-2", "50.00", "2025-02"))
    apply_all(app, credit_note(C, "CN1", "30.00", invoice_id=FEB, occurred_at=at("2025-03-05")))

    assert remainders(app) == {JAN: Decimal("100.00"), FEB: Decimal("20.00")}
    row = balance(app)
    assert money(row, "credited", "paid", "outstanding", "unapplied_credit") == (
        "30.00", "0.00", "120.00", "0.00",
    )  # fmt: skip
    accounts = trial_balance(app)
    assert accounts["revenue"] == Decimal("-120.00")  # 150 billed less the 30 credited
    assert accounts[f"accounts_receivable:{C}"] == Decimal("120.00")


def test_credit_note_beyond_what_is_owed_becomes_unapplied_credit(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, credit_note(C, "CN1", "120.00", occurred_at=at("2025-02-05")))

    assert money(balance(app), "outstanding", "unapplied_credit", "balance") == (
        "0.00", "20.00", "-20.00",
    )  # fmt: skip


def test_refund_beyond_unapplied_credit_is_refused_with_insufficient_credit(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    assert codes(handle(app, refund(C, "R0", "1.00"))) == ["insufficient_credit"]
    apply_all(app, payment(C, "P1", "130.00", occurred_at=at("2025-02-10")))
    events_before = len(app.stream(C))

    [outcome] = handle(app, refund(C, "R1", "30.01", occurred_at=at("2025-02-11")))

    assert outcome.status == "rejected"
    assert outcome.error is not None and outcome.error.code == "insufficient_credit"
    assert outcome.error.field == "amount"
    assert "30.00" in outcome.error.message
    assert len(app.stream(C)) == events_before
    assert money(balance(app), "refunded", "unapplied_credit") == ("0.00", "30.00")


def test_refund_within_credit_pays_it_back(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(
        app,
        payment(C, "P1", "130.00", occurred_at=at("2025-02-10")),
        refund(C, "R1", "25.00", occurred_at=at("2025-02-11")),
    )
    row = balance(app)
    assert money(row, "paid", "refunded", "unapplied_credit", "balance") == (
        "130.00", "25.00", "5.00", "-5.00",
    )  # fmt: skip
    accounts = trial_balance(app)
    assert accounts["cash"] == Decimal("105.00")
    assert accounts[f"unapplied_cash_and_credits:{C}"] == Decimal("-5.00")

    apply_all(app, refund(C, "R2", "5.00", occurred_at=at("2025-02-12")))
    assert money(balance(app), "refunded", "unapplied_credit", "balance") == (
        "30.00", "0.00", "0.00",
    )  # fmt: skip


def test_refund_is_never_dated_before_the_credit_it_pays_out(app: LedgerApplication) -> None:
    apply_all(
        app,
        customer_registered(C),
        payment(C, "P1", "50.00", occurred_at=at("2025-02-10")),
        refund(C, "R1", "50.00", occurred_at=at("2025-02-01")),  # business time skewed earlier
    )
    [refunded] = [e for e in app.stream(C) if isinstance(e, ev.RefundIssued)]
    assert refunded.occurred_at == datetime(2025, 2, 10, 10, 0, tzinfo=UTC)
    # As it stood on 2025-02-05 there was neither the payment nor its refund.
    past = balance(app, date(2025, 2, 5), historical=True)
    assert money(past, "paid", "refunded", "unapplied_credit") == ("0.00", "0.00", "0.00")


def test_cancel_refund_charge_reduces_the_invoice(app: LedgerApplication) -> None:
    apply_all(
        app,
        customer_registered(C),
        period_charge("CH-1", "100.00", "2025-01"),
        period_charge("CH-2", "-30.00", "2025-01", charge_type="cancel_refund"),
    )
    assert money(balance(app), "unbilled") == ("70.00",)

    app.run_invoices("2025-01", date(2025, 2, 1))

    [invoice] = events_of(app, ev.InvoiceIssued)
    assert invoice["total"] == "70.00"
    assert invoice["charge_ids"] == ["CH-1", "CH-2"]
    assert money(balance(app), "billed", "unbilled", "outstanding") == ("70.00", "0.00", "70.00")
    accounts = trial_balance(app)
    assert accounts["revenue"] == Decimal("-70.00")
    assert accounts["cost_of_sales"] == Decimal("56.00")  # 80 - 24
    assert accounts[f"accounts_receivable:{C}"] == Decimal("70.00")


def test_cancel_refund_outweighing_charges_gives_credit_that_settles_open_invoices(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(app, period_charge("CH-2", "-40.00", "2025-02", charge_type="cancel_refund"))

    app.run_invoices("2025-02", date(2025, 3, 1))

    assert remainders(app) == {JAN: Decimal("60.00"), FEB: Decimal(0)}
    assert money(balance(app), "billed", "outstanding", "unapplied_credit") == (
        "60.00", "60.00", "0.00",
    )  # fmt: skip
    trial_balance(app)


# ---- idempotency and refusals -------------------------------------------------------------


def test_redelivered_message_has_no_second_effect(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    pay = payment(C, "P1", "40.00")

    assert codes(handle(app, pay)) == ["applied"]
    events_after_first = len(app.stream(C))
    assert codes(handle(app, pay)) == ["duplicate"]
    assert codes(handle(app, pay, pay)) == ["duplicate", "duplicate"]

    assert len(app.stream(C)) == events_after_first
    assert money(balance(app), "paid", "outstanding") == ("40.00", "60.00")


def test_redelivery_within_one_batch_is_a_duplicate(app: LedgerApplication) -> None:
    pay = payment(C, "P1", "40.00")
    outcomes = handle(app, customer_registered(C), pay, pay, customer_registered(C))
    assert codes(outcomes) == ["applied", "applied", "duplicate", "duplicate"]
    assert len(events_of(app, ev.PaymentReceived)) == 1


def test_same_fact_resent_under_a_new_message_id_is_a_duplicate(app: LedgerApplication) -> None:
    apply_all(app, customer_registered(C), charge(C, "CH-1", "100.00"))
    assert codes(handle(app, charge(C, "CH-1", "100.0", message_id="resent-1"))) == ["duplicate"]
    assert len(events_of(app, ev.ChargePosted)) == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (charge(C, "CH-1", "100.00"), charge(C, "CH-1", "120.00", message_id="m-2")),
        (payment(C, "P1", "40.00"), payment(C, "P1", "45.00", message_id="m-2")),
        (
            credit_note(C, "CN1", "5.00"),
            credit_note(C, "CN1", "5.00", reason="x", message_id="m-2"),
        ),
        (charge(C, "CH-1", "100.00", message_id="m-1"), payment(C, "P1", message_id="m-1")),
    ],
    ids=["charge_id", "payment_id", "credit_id", "message_id"],
)
def test_same_business_id_with_a_different_payload_is_a_conflict(
    app: LedgerApplication, first: str, second: str
) -> None:
    apply_all(app, customer_registered(C), first)
    events_before = len(app.stream(C))

    [outcome] = handle(app, second)

    assert outcome.error is not None and outcome.error.code == "conflict"
    assert len(app.stream(C)) == events_before


def test_registering_a_customer_again_with_other_details_is_a_conflict(
    app: LedgerApplication,
) -> None:
    apply_all(app, customer_registered(C))
    assert codes(handle(app, customer_registered(C, currency="EUR", message_id="r2"))) == [
        "conflict"
    ]


def test_message_in_another_currency_is_refused_with_currency_mismatch(
    app: LedgerApplication,
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    outcomes = handle(
        app,
        charge(C, "CH-9", "10.00", currency="EUR"),
        payment(C, "P1", "10.00", currency="EUR"),
        credit_note(C, "CN1", "10.00", currency="EUR"),
    )
    assert codes(outcomes) == ["currency_mismatch"] * 3
    assert all(o.error and o.error.field == "currency" for o in outcomes)
    assert money(balance(app), "unbilled", "paid", "credited") == ("0.00", "0.00", "0.00")


def test_message_for_an_unregistered_customer_is_refused_with_unknown_customer(
    app: LedgerApplication,
) -> None:
    outcomes = handle(app, charge("ghost", "CH-1"), payment("ghost", "P1"))
    assert codes(outcomes) == ["unknown_customer", "unknown_customer"]
    assert app.customer_ids() == []


def test_refused_message_does_not_stop_the_batch(app: LedgerApplication) -> None:
    outcomes = handle(
        app,
        customer_registered(C),
        charge(C, "CH-1", "10.00", currency="EUR"),
        charge(C, "CH-2", "20.00"),
    )
    assert codes(outcomes) == ["applied", "currency_mismatch", "applied"]
    assert money(balance(app), "unbilled") == ("20.00",)


# ---- invoice runs -------------------------------------------------------------------------


def test_invoice_run_names_dates_and_sets_due_date_from_payment_terms(
    app: LedgerApplication,
) -> None:
    apply_all(
        app,
        customer_registered(C, payment_terms_days=14),
        period_charge("CH-1", "100.00", "2025-01"),
    )
    assert app.run_invoices("2025-01", _day_after("2025-01")) == [JAN]

    [invoice] = events_of(app, ev.InvoiceIssued)
    assert invoice["invoice_id"] == "INV-contoso-2025-01"
    assert (invoice["invoice_date"], invoice["due_date"]) == ("2025-02-01", "2025-02-15")
    assert (invoice["total"], invoice["currency"]) == ("100.00", "USD")


@pytest.mark.parametrize(
    ("period", "first_day_after"),
    [("2025-01", date(2025, 2, 1)), ("2024-02", date(2024, 3, 1)), ("2024-12", date(2025, 1, 1))],
)
def test_invoice_date_defaults_to_the_first_day_after_the_period(
    period: str, first_day_after: date
) -> None:
    assert _day_after(period) == first_day_after


def test_invoice_run_with_an_explicit_date(app: LedgerApplication) -> None:
    apply_all(app, customer_registered(C), period_charge("CH-1", "100.00", "2025-01"))
    app.run_invoices("2025-01", date(2025, 2, 10))
    [invoice] = events_of(app, ev.InvoiceIssued)
    assert (invoice["invoice_date"], invoice["due_date"]) == ("2025-02-10", "2025-03-12")


def test_invoice_includes_earlier_periods_and_leaves_later_ones_unbilled(
    app: LedgerApplication,
) -> None:
    apply_all(
        app,
        customer_registered(C),
        period_charge("CH-NOV", "10.00", "2024-11"),
        period_charge("CH-JAN", "100.00", "2025-01"),
        period_charge("CH-FEB", "50.00", "2025-02"),
    )
    app.run_invoices("2025-01", date(2025, 2, 1))

    [invoice] = events_of(app, ev.InvoiceIssued)
    assert invoice["charge_ids"] == ["CH-JAN", "CH-NOV"]
    assert invoice["total"] == "110.00"
    assert money(balance(app), "billed", "unbilled") == ("110.00", "50.00")
    assert list(app.get(C).unbilled) == ["CH-FEB"]


def test_second_invoice_run_issues_nothing(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    version = app.get(C).version

    assert app.run_invoices("2025-01", date(2025, 2, 1)) == []
    assert app.run_invoices("2025-01", date(2025, 2, 5)) == []

    assert app.get(C).version == version
    assert money(balance(app), "billed") == ("100.00",)


def test_customer_without_unbilled_charges_gets_no_invoice(app: LedgerApplication) -> None:
    apply_all(
        app,
        customer_registered(C),
        customer_registered("fabrikam"),
        customer_registered("later"),
        period_charge("CH-1", "100.00", "2025-01"),
        charge("later", "CH-L", "5.00", billing_period="2025-02"),
    )
    assert app.run_invoices("2025-01", date(2025, 2, 1)) == [JAN]
    assert app.get("fabrikam").invoices == {}
    assert app.get("later").invoices == {}


# ---- views --------------------------------------------------------------------------------


def test_trial_balance_debits_equal_credits_in_every_currency(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    apply_all(
        app,
        customer_registered("euro", currency="EUR"),
        charge("euro", "E-1", "200.00", currency="EUR", charge_type="support", cost="0.00"),
        payment("euro", "EP1", "250.00", currency="EUR"),
        payment(C, "P1", "60.00"),
        credit_note(C, "CN1", "10.00"),
    )
    app.run_invoices("2025-01", date(2025, 2, 1))

    rows = compute_view(app, "trial-balance", LOOK_DAY)
    assert {r["currency"] for r in rows} == {"USD", "EUR"}
    assert set(rows[0]) == {"account", "currency", "debit", "credit", "balance"}
    accounts = {(r["account"], r["currency"]): Decimal(r["balance"]) for r in rows}
    assert accounts[("support_revenue", "EUR")] == Decimal("-200.00")
    assert accounts[("unapplied_cash_and_credits:euro", "EUR")] == Decimal("-50.00")
    assert accounts[("accounts_receivable:contoso", "USD")] == Decimal("30.00")
    trial_balance(app)  # debits == credits per currency


def test_balances_row_has_exactly_the_spec_fields(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))
    row = balance(app)
    assert set(row) == BALANCE_FIELDS
    assert set(row["aging"]) == AGING_FIELDS
    assert (row["customer_id"], row["name"], row["currency"], row["status"]) == (
        C, "contoso Ltd", "USD", "active",
    )  # fmt: skip
    assert row["last_payment_date"] is None


def test_aging_buckets_open_remainders_by_days_past_due(app: LedgerApplication) -> None:
    billed(
        app,
        ("OCT", "1000.00", "2024-10"),  # due 2024-12-01: 99 days past due on 2025-03-10
        ("NOV", "500.00", "2024-11"),  # due 2024-12-31: 69 days
        ("DEC", "200.00", "2024-12"),  # due 2025-01-31: 38 days
        ("JAN", "100.00", "2025-01"),  # due 2025-03-03: 7 days
        ("FEB", "50.00", "2025-02"),  # due 2025-03-31: not yet due
    )
    row = balance(app, date(2025, 3, 10))

    assert row["aging"] == {
        "current": "50.00", "d1_30": "100.00", "d31_60": "200.00", "d61_90": "500.00",
        "d90_plus": "1000.00",
    }  # fmt: skip
    assert money(row, "outstanding", "overdue", "balance") == ("1850.00", "1800.00", "1850.00")
    assert row["days_past_due"] == 99


@pytest.mark.parametrize(
    ("as_of", "bucket", "days_past_due"),
    [
        (date(2025, 3, 3), "current", 0),  # on the due date
        (date(2025, 3, 4), "d1_30", 1),
        (date(2025, 4, 2), "d1_30", 30),
        (date(2025, 4, 3), "d31_60", 31),
        (date(2025, 5, 2), "d31_60", 60),
        (date(2025, 5, 3), "d61_90", 61),
        (date(2025, 6, 1), "d61_90", 90),
        (date(2025, 6, 2), "d90_plus", 91),
    ],
)
def test_aging_bucket_boundaries(
    app: LedgerApplication, as_of: date, bucket: str, days_past_due: int
) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))  # due 2025-03-03
    row = balance(app, as_of)
    assert {k: v for k, v in row["aging"].items() if v != "0.00"} == {bucket: "100.00"}
    assert row["days_past_due"] == days_past_due
    assert row["overdue"] == ("0.00" if bucket == "current" else "100.00")


def test_balances_as_of_a_past_date_replays_history(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))  # invoiced 2025-02-01, due 2025-03-03
    apply_all(app, payment(C, "P1", "100.00", occurred_at=at("2025-03-20")))

    before_invoice = balance(app, date(2025, 1, 20), historical=True)
    assert money(before_invoice, "billed", "unbilled", "outstanding") == ("0.00", "100.00", "0.00")

    before_payment = balance(app, date(2025, 3, 10), historical=True)
    assert money(before_payment, "billed", "paid", "outstanding", "overdue") == (
        "100.00", "0.00", "100.00", "100.00",
    )  # fmt: skip
    assert before_payment["days_past_due"] == 7
    assert before_payment["aging"]["d1_30"] == "100.00"
    assert before_payment["last_payment_date"] is None

    after_payment = balance(app, date(2025, 3, 25), historical=True)
    assert money(after_payment, "paid", "outstanding", "overdue") == ("100.00", "0.00", "0.00")
    assert after_payment["last_payment_date"] == "2025-03-20"

    past = app.replay_as_of(C, date(2025, 3, 10))
    assert past is not None and past.outstanding() == Decimal("100.00")


def test_suspension_shows_in_balances_status_until_paid_in_full(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"))  # due 2025-03-03
    app.run_collections(date(2025, 4, 2))  # 30 days past due, 100 > 10: suspend

    assert balance(app, date(2025, 4, 2))["status"] == "suspended"
    apply_all(app, payment(C, "P1", "100.00", occurred_at=at("2025-04-03")))
    assert balance(app, date(2025, 4, 3))["status"] == "active"


def test_views_and_aggregate_agree(app: LedgerApplication) -> None:
    billed(app, ("CH-1", "100.00", "2025-01"), ("CH-2", "50.00", "2025-02"))
    apply_all(app, payment(C, "P1", "70.00"), credit_note(C, "CN1", "5.00"))
    account, row = app.get(C), balance(app)
    assert Decimal(row["outstanding"]) == account.outstanding() == Decimal("75.00")
    assert Decimal(row["unapplied_credit"]) == account.unapplied_credit() == 0


def test_every_message_builder_makes_a_message_the_ledger_applies(app: LedgerApplication) -> None:
    sequence = [
        customer_registered(C), customer_updated(C), charge(C), payment(C, amount="150.00"),
        payment_reversed(C), credit_note(C), payment(C, "PAY-2", "10.00"), refund(C),
        support_ticket_opened(C), support_interaction(C), support_escalated(C),
        support_ticket_resolved(C),
    ]  # fmt: skip
    assert codes(handle(app, *sequence)) == ["applied"] * len(sequence)
    assert codes(handle(app, *sequence)) == ["duplicate"] * len(sequence)
