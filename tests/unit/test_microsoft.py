"""The Microsoft side (SPEC §11) with concrete numbers: reconciliation books Microsoft's
invoice in the journal, payments applied to Microsoft's invoices (unallocated money settling
the next invoice), the credit limit and its thresholds, days overdue and the partner's status,
as-of views, a EUR customer billed from a USD Microsoft invoice, and balanced books."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.app.application import LedgerApplication
from ledger.app.microsoft import check, find_account, pay, set_credit_limit, settle_after_invoice
from ledger.app.reconcile import import_recon_file
from ledger.app.views import compute_view
from ledger.domain.account import start_of
from ledger.domain.errors import Conflict, CurrencyMismatch
from ledger.domain.microsoft import (
    MicrosoftOverpayment,
    UnknownMicrosoftInvoice,
    account_stream,
    microsoft_account_id,
)
from ledger.domain.stream import Meta
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import charge, customer_registered, msg
from tests.unit.test_remittance_view import apply_all, period_charge, recon_csv

RECORDED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
A = "contoso"


def new_app() -> LedgerApplication:
    return LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)


@pytest.fixture
def app() -> LedgerApplication:
    return new_app()


def invoice(app: LedgerApplication, number: str, period: str, amount: str, due: date,
            currency: str = "USD", invoice_day: date | None = None) -> None:  # fmt: skip
    """Record a Microsoft invoice as `ledger reconcile` does (then book it)."""
    day = invoice_day or due - timedelta(days=60)
    data = {
        "invoice_number": number, "billing_period": period, "currency": currency,
        "amount": amount, "invoice_date": day.isoformat(), "due_date": due.isoformat(),
        "file_sha256": f"sha-{number}", "line_count": 1,
    }  # fmt: skip
    report = {"invoice_total": amount, "matched": 1, "missing_in_ledger": [],
              "missing_on_invoice": [], "amount_mismatches": []}  # fmt: skip
    assert app.record_microsoft_invoice(data, report, day)
    settle_after_invoice(app, period, currency, day)


def ms_view(app: LedgerApplication, as_of: date, historical: bool = True) -> dict[str, Any]:
    return {r["currency"]: r for r in compute_view(app, "microsoft", as_of,
                                                    historical=historical)}  # fmt: skip


def balances(
    app: LedgerApplication, as_of: date = date(2030, 1, 1)
) -> dict[tuple[str, str], Decimal]:
    rows = compute_view(app, "trial-balance", as_of)
    return {(r["account"], r["currency"]): Decimal(r["balance"]) for r in rows}


def assert_balanced(app: LedgerApplication) -> None:
    sums: dict[str, Decimal] = {}
    for (_, currency), balance in balances(app).items():
        sums[currency] = sums.get(currency, Decimal(0)) + balance
    assert all(v == 0 for v in sums.values()), sums


def jan_and_feb(app: LedgerApplication) -> None:
    """One USD customer: January's cost 800.00, February's 600.00."""
    apply_all(app, customer_registered(A, occurred_at="2024-12-01T10:00:00Z"))
    apply_all(app, period_charge(A, "A-1", "1000.00", "800.00", "2025-01"),
              period_charge(A, "A-2", "750.00", "600.00", "2025-02"))  # fmt: skip


# ---- 1. reconciliation books Microsoft's invoice -----------------------------------------------


def test_a_month_reconciled_and_partly_paid(app: LedgerApplication) -> None:
    jan_and_feb(app)
    assert balances(app)[("payable_to_microsoft", "USD")] == Decimal("-1400.00")  # accrued
    raw = recon_csv("G-JAN", [(A, f"sub-{A}", "cycleCharge", "2025-01-01", "812.50")])
    result = import_recon_file(app, raw, payment_terms_days=60)
    assert result.recorded and result.due_date == date(2025, 4, 2)  # 2025-02-01 + 60 days
    books = balances(app)
    # January at Microsoft's 812.50 (12.50 more than accrued, to cost of sales) + Feb accrued.
    assert books[("payable_to_microsoft", "USD")] == Decimal("-1412.50")
    assert books[("cost_of_sales", "USD")] == Decimal("1412.50")
    assert_balanced(app)

    account, applied = pay(app, Decimal("500.00"), "USD", "WIRE-1", date(2025, 3, 1))
    assert applied and account.payments["WIRE-1"]["allocations"] == [
        {"invoice_number": "G-JAN", "billing_period": "2025-01", "amount": "500.00"}
    ]
    # payable for January = invoiced - paid = 312.50; February still its accrued 600.00.
    assert balances(app)[("payable_to_microsoft", "USD")] == Decimal("-912.50")
    assert_balanced(app)
    row = ms_view(app, date(2025, 3, 2))["USD"]
    assert row["invoices"] == [{
        "invoice_number": "G-JAN", "billing_period": "2025-01", "amount": "812.50",
        "invoice_date": "2025-02-01", "due_date": "2025-04-02", "paid": "500.00",
        "open": "312.50", "days_past_due": 0,
    }]  # fmt: skip
    assert (row["credit_used"], row["partner_status"], row["unallocated"]) == (
        "912.50", "current", "0.00",
    )  # fmt: skip
    remittance = {r["billing_period"]: r for r in compute_view(app, "remittance", date(2025, 3, 2))}
    assert remittance["2025-01"]["paid_to_microsoft"] == "500.00"
    assert remittance["2025-01"]["due_to_microsoft"] == "312.50"

    head = app.head_position()
    again = import_recon_file(app, raw, payment_terms_days=60)
    assert not again.recorded and app.head_position() == head


def test_a_charge_posted_after_the_invoice_is_trued_up_by_the_check(app: LedgerApplication) -> None:
    jan_and_feb(app)
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 1))
    apply_all(app, charge(A, "A-LATE", "50.00", cost="40.00", billing_period="2025-01",
                          occurred_at="2025-02-10T10:00:00Z"))  # fmt: skip
    assert balances(app)[("payable_to_microsoft", "USD")] == Decimal("-1440.00")
    assert check(app, date(2025, 2, 15)).settled == 1
    assert balances(app)[("payable_to_microsoft", "USD")] == Decimal("-1400.00")
    assert check(app, date(2025, 2, 15)).settled == 0
    assert_balanced(app)


# ---- 2. payments applied to Microsoft's invoices ---------------------------------------------


def test_an_overpayment_leaves_unallocated_money_that_settles_the_next_month(
    app: LedgerApplication,
) -> None:
    jan_and_feb(app)
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 1))
    head = app.head_position()
    with pytest.raises(MicrosoftOverpayment, match=r"1000\.00 USD exceeds the 800\.00 USD open"):
        pay(app, Decimal("1000.00"), "USD", "WIRE-1", date(2025, 3, 1))
    assert app.head_position() == head

    account, _ = pay(app, Decimal("1000.00"), "USD", "WIRE-1", date(2025, 3, 1), force=True)
    assert account.payments["WIRE-1"]["unallocated"] == "200.00"
    books = balances(app)
    assert books[("unallocated_paid_to_microsoft", "USD")] == Decimal("200.00")
    assert books[("payable_to_microsoft", "USD")] == Decimal("-600.00")  # Feb accrued
    assert ms_view(app, date(2025, 3, 2))["USD"]["unallocated"] == "200.00"

    invoice(app, "G-FEB", "2025-02", "600.00", date(2025, 5, 1), invoice_day=date(2025, 3, 1))
    row = ms_view(app, date(2025, 3, 2))["USD"]
    assert [(i["invoice_number"], i["paid"], i["open"]) for i in row["invoices"]] == [
        ("G-JAN", "800.00", "0.00"), ("G-FEB", "200.00", "400.00"),
    ]  # fmt: skip
    assert row["unallocated"] == "0.00"
    books = balances(app)
    assert books.get(("unallocated_paid_to_microsoft", "USD"), Decimal(0)) == 0
    assert books[("payable_to_microsoft", "USD")] == Decimal("-400.00")
    remittance = {r["billing_period"]: r for r in compute_view(app, "remittance", date(2025, 3, 2))}
    assert remittance["2025-02"]["paid_to_microsoft"] == "200.00"
    assert_balanced(app)


def test_the_named_invoice_first_then_the_oldest_due(app: LedgerApplication) -> None:
    jan_and_feb(app)
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 1))
    invoice(app, "G-FEB", "2025-02", "600.00", date(2025, 5, 1), invoice_day=date(2025, 3, 1))
    account, _ = pay(app, Decimal("700.00"), "USD", "W-1", date(2025, 3, 5), invoice_number="G-FEB")
    assert account.payments["W-1"]["allocations"] == [
        {"invoice_number": "G-FEB", "billing_period": "2025-02", "amount": "600.00"},
        {"invoice_number": "G-JAN", "billing_period": "2025-01", "amount": "100.00"},
    ]
    account, _ = pay(app, Decimal("800.00"), "USD", "W-2", date(2025, 3, 6), force=True)
    assert account.payments["W-2"]["allocations"] == [
        {"invoice_number": "G-JAN", "billing_period": "2025-01", "amount": "700.00"}
    ]
    assert account.payments["W-2"]["unallocated"] == "100.00"


def test_bad_payments_are_refused_and_record_nothing(app: LedgerApplication) -> None:
    jan_and_feb(app)
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 1))
    head = app.head_position()
    with pytest.raises(UnknownMicrosoftInvoice, match="G-NOPE"):
        pay(app, Decimal("10.00"), "USD", "W-1", date(2025, 3, 1), invoice_number="G-NOPE")
    with pytest.raises(CurrencyMismatch, match="nothing in EUR"):
        pay(app, Decimal("10.00"), "EUR", "W-1", date(2025, 3, 1), force=True)
    with pytest.raises(MicrosoftOverpayment, match=r"800\.01 USD exceeds the 800\.00 USD open"):
        pay(app, Decimal("800.01"), "USD", "W-1", date(2025, 3, 1), invoice_number="G-JAN")
    assert app.head_position() == head
    pay(app, Decimal("10.00"), "USD", "W-1", date(2025, 3, 1))
    assert not pay(app, Decimal("10.00"), "USD", "W-1", date(2025, 3, 2))[1]
    with pytest.raises(Conflict, match="W-1"):
        pay(app, Decimal("11.00"), "USD", "W-1", date(2025, 3, 1))


# ---- 3. credit limit and alerts ---------------------------------------------------------------


def accrue(app: LedgerApplication, charge_id: str, cost: str, day: date) -> None:
    apply_all(app, charge(A, charge_id, cost, cost=cost, billing_period="2025-01",
                          subscription_id=f"sub-{charge_id}",
                          occurred_at=f"{day.isoformat()}T10:00:00Z"))  # fmt: skip


def alerts(app: LedgerApplication, currency: str = "USD") -> list[tuple[str, Any, str]]:
    account = find_account(app, currency)
    assert account is not None
    out = []
    for event in app.events.get(microsoft_account_id(currency)):
        data = event.data  # type: ignore[attr-defined]
        if type(event).__name__ == "MicrosoftCreditThresholdCrossed":
            out.append(("credit", data["threshold"], data["crossed_on"]))
        elif type(event).__name__ == "MicrosoftInvoiceOverdue":
            out.append(("overdue", data["days"], data["overdue_on"]))
    return out


def test_thresholds_are_crossed_in_order_and_only_once_on_daily_runs(
    app: LedgerApplication,
) -> None:
    apply_all(app, customer_registered(A, occurred_at="2024-12-01T10:00:00Z"))
    set_credit_limit(app, Decimal("1000.00"), "USD", date(2025, 1, 1))
    plan = {date(2025, 1, 10): "500.00", date(2025, 1, 20): "250.00",
            date(2025, 1, 25): "150.00", date(2025, 2, 5): "100.00"}  # fmt: skip
    day = date(2025, 1, 1)
    while day <= date(2025, 2, 10):
        if day in plan:
            accrue(app, f"C-{day}", plan[day], day)
        check(app, day)
        check(app, day)  # a repeated run records nothing more
        day += timedelta(days=1)
    assert alerts(app) == [
        ("credit", 70, "2025-01-20"), ("credit", 85, "2025-01-25"), ("credit", 100, "2025-02-05"),
    ]  # fmt: skip
    event = list(app.events.get(microsoft_account_id("USD")))[-1]
    assert event.data["respond_by"] == "2025-02-06"  # type: ignore[attr-defined]  # 24 hours
    assert event.customer_id == account_stream("USD")  # type: ignore[attr-defined]
    row = ms_view(app, date(2025, 1, 22))["USD"]
    assert (row["credit_limit"], row["credit_used"], row["credit_used_percent"],
            row["credit_status"]) == ("1000.00", "750.00", "75.00", "warning_70")  # fmt: skip
    assert ms_view(app, date(2025, 2, 6))["USD"]["credit_status"] == "at_limit"
    assert ms_view(app, date(2025, 1, 26))["USD"]["credit_status"] == "warning_85"


def test_an_invoice_61_days_overdue_makes_the_partner_suspendable(app: LedgerApplication) -> None:
    jan_and_feb(app)
    due = date(2025, 4, 1)
    invoice(app, "G-JAN", "2025-01", "800.00", due)
    pay(app, Decimal("300.00"), "USD", "W-1", due + timedelta(days=40))
    statuses = {n: ms_view(app, due + timedelta(days=n))["USD"] for n in (0, 10, 46, 61)}
    assert [(r["oldest_days_past_due"], r["partner_status"]) for r in statuses.values()] == [
        (0, "current"), (10, "overdue"), (46, "suspension_risk"), (61, "suspendable"),
    ]  # fmt: skip
    assert statuses[61]["invoices"][0]["open"] == "500.00"
    fired = check(app, due + timedelta(days=61)).alerts
    assert [(a["event_type"], a["days"], a["open"]) for a in fired] == [
        ("MicrosoftInvoiceOverdue", 30, "800.00"), ("MicrosoftInvoiceOverdue", 45, "500.00"),
        ("MicrosoftInvoiceOverdue", 60, "500.00"),
    ]  # fmt: skip
    assert fired[-1]["partner_status"] == "suspension_risk"  # 60 days: suspendable after it
    assert check(app, due + timedelta(days=90)).alerts == []


def test_paid_before_45_days_no_later_alert(app: LedgerApplication) -> None:
    jan_and_feb(app)
    due = date(2025, 4, 1)
    invoice(app, "G-JAN", "2025-01", "800.00", due)
    pay(app, Decimal("800.00"), "USD", "W-1", due + timedelta(days=44))
    assert [a["days"] for a in check(app, due + timedelta(days=70)).alerts] == [30]


# ---- 4. as-of views ---------------------------------------------------------------------------


def test_as_of_views_before_and_after_each_event(app: LedgerApplication) -> None:
    jan_and_feb(app)
    set_credit_limit(app, Decimal("1000.00"), "USD", date(2025, 1, 15))
    set_credit_limit(app, Decimal("2000.00"), "USD", date(2025, 2, 15))
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 2), invoice_day=date(2025, 2, 1))
    pay(app, Decimal("300.00"), "USD", "W-1", date(2025, 3, 1))

    def at(day: date) -> tuple[Any, ...]:
        row = ms_view(app, day)["USD"]
        paid = row["invoices"][0]["paid"] if row["invoices"] else None
        return (row["credit_limit"], len(row["invoices"]), paid, row["credit_used"])

    assert at(date(2025, 1, 14)) == (None, 0, None, "800.00")  # Feb's cost not yet posted
    assert at(date(2025, 1, 15)) == ("1000.00", 0, None, "800.00")
    assert at(date(2025, 1, 31)) == ("1000.00", 0, None, "800.00")
    assert at(date(2025, 2, 1)) == ("1000.00", 1, "0.00", "800.00")
    assert at(date(2025, 2, 14)) == ("1000.00", 1, "0.00", "1400.00")
    assert at(date(2025, 2, 15)) == ("2000.00", 1, "0.00", "1400.00")
    assert at(date(2025, 2, 28)) == ("2000.00", 1, "0.00", "1400.00")
    assert at(date(2025, 3, 1)) == ("2000.00", 1, "300.00", "1100.00")
    assert ms_view(app, date(2025, 1, 14))["USD"]["credit_used_percent"] is None
    assert ms_view(app, date(2025, 2, 14))["USD"]["credit_status"] == "at_limit"
    assert ms_view(app, date(2025, 2, 15))["USD"]["credit_status"] == "warning_70"


# ---- 5. a EUR customer billed from a USD Microsoft invoice ------------------------------------


def post_cross_currency_charge(app: LedgerApplication, customer: str, charge_id: str,
                               amount: str, cost: str, rate: str,
                               day: date = date(2025, 1, 10)) -> None:  # fmt: skip
    """A charge priced in the customer's EUR whose cost Microsoft bills in USD (the charge
    fields `cost_currency` and `cost_fx_rate` of SPEC §3/§10, posted as ingest would)."""
    message = msg(charge(customer, charge_id, amount, cost=cost, billing_period="2025-01",
                         subscription_id=f"sub-{customer}", charge_start="2025-01-01",
                         charge_end="2025-01-28", currency="EUR",
                         occurred_at=f"{day.isoformat()}T10:00:00Z"))  # fmt: skip
    payload = dict(message.to_payload(), cost_currency="USD", cost_fx_rate=rate)
    account = app.get(customer)
    meta = Meta(occurred_at=message.occurred_at, recorded_at=RECORDED,
                message_id=message.message_id, fingerprint=message.fingerprint())  # fmt: skip
    assert account.post_charge(payload, meta)
    app.save(account)


def test_a_eur_customer_on_a_usd_invoice_counts_in_the_usd_rows(app: LedgerApplication) -> None:
    apply_all(app, customer_registered("eu", currency="EUR", occurred_at="2024-12-01T10:00:00Z"))
    post_cross_currency_charge(app, "eu", "EU-1", "920.00", "800.00", "0.92")
    remittance = compute_view(app, "remittance", date(2025, 2, 1))
    assert [(r["billing_period"], r["currency"], r["cost_accrued"]) for r in remittance] == [
        ("2025-01", "USD", "800.00"),
    ]  # fmt: skip
    books = balances(app)
    assert books[("payable_to_microsoft", "USD")] == Decimal("-800.00")
    assert books[("revenue", "EUR")] == Decimal("-920.00")
    assert ("payable_to_microsoft", "EUR") not in books
    assert_balanced(app)

    assert len(app.run_invoices("2025-01", date(2025, 2, 1))) == 1
    apply_all(app, '{"message_id": "p-eu", "type": "payment", "customer_id": "eu", '
              '"occurred_at": "2025-02-10T10:00:00Z", "payment_id": "P-EU", "amount": "460.00",'
              ' "currency": "EUR", "method": "card", "reference": "r"}')  # fmt: skip
    row = compute_view(app, "remittance", date(2025, 2, 11))[0]
    # Half the EUR invoice is paid in cash: half of the USD cost is collected.
    assert (row["collected_from_customers"], row["exposure"]) == ("400.00", "400.00")

    raw = recon_csv("G-USD", [("eu", "sub-eu", "cycleCharge", "2025-01-01", "800.00")])
    result = import_recon_file(app, raw, payment_terms_days=60)
    assert (result.report.matched, result.report.to_json()["missing_on_invoice"]) == (1, [])
    usd = ms_view(app, date(2025, 2, 11), historical=False)
    assert list(usd) == ["USD"] and usd["USD"]["credit_used"] == "800.00"
    assert_balanced(app)


# ---- 6. properties ----------------------------------------------------------------------------

DAYS = st.integers(min_value=0, max_value=70)
STEP = st.one_of(
    st.tuples(st.just("charge"), DAYS, st.integers(1, 600)),
    st.tuples(st.just("invoice"), DAYS, st.integers(-50, 50)),
    st.tuples(st.just("pay"), DAYS, st.integers(1, 900)),
    st.tuples(st.just("limit"), DAYS, st.integers(500, 3000)),
    st.tuples(st.just("eur_charge"), DAYS, st.integers(1, 400)),  # a EUR customer, USD cost
)
START = date(2025, 1, 1)


def run_plan(app: LedgerApplication, steps: list[tuple[str, int, int]],
             daily: bool, last: int) -> None:  # fmt: skip
    """Apply the steps in day order (as they would be recorded); with `daily`, run the
    Microsoft check at the end of every day, else once after the last day."""
    apply_all(
        app,
        customer_registered(A, occurred_at="2024-12-01T10:00:00Z"),
        customer_registered("eu", currency="EUR", occurred_at="2024-12-01T10:00:00Z"),
    )
    plan = sorted(enumerate(steps), key=lambda s: (s[1][1], s[0]))
    months: dict[str, int] = {}
    for offset in range(last + 1):
        day = START + timedelta(days=offset)
        for index, (kind, when, value) in plan:
            if when != offset:
                continue
            if kind == "charge":
                accrue(app, f"C-{index}", f"{value}.00", day)
            elif kind == "eur_charge":
                post_cross_currency_charge(app, "eu", f"X-{index}", f"{value}.00",
                                           f"{value * 2}.00", "0.50", day)  # fmt: skip
            elif kind == "limit":
                set_credit_limit(app, Decimal(value), "USD", day)
            elif kind == "pay":
                # Nothing owed in USD yet: refused, nothing recorded.
                with contextlib.suppress(CurrencyMismatch):
                    pay(app, Decimal(value), "USD", f"W-{index}", day, force=True)
            elif kind == "invoice":  # Microsoft invoices the month's accrued cost +/- a little
                period = f"2025-{len(months) + 1:02d}"
                months[period] = index
                accrued = sum((Decimal(e.data["cost"]) for e in app.charge_events()), Decimal(0))
                amount = max(accrued / 3 + value, Decimal(1)).quantize(Decimal("0.01"))
                invoice(app, f"G-{index}", period, str(amount), day + timedelta(days=20),
                        invoice_day=day)  # fmt: skip
        if daily:
            check(app, day)
    if not daily:
        check(app, START + timedelta(days=last))


def recorded_alerts(app: LedgerApplication) -> list[tuple[str, dict[str, Any]]]:
    account = find_account(app, "USD")
    if account is None:
        return []
    return [
        (type(e).__name__, e.data)  # type: ignore[attr-defined]
        for e in app.events.get(microsoft_account_id("USD"))
        if type(e).__name__ in ("MicrosoftCreditThresholdCrossed", "MicrosoftInvoiceOverdue")
    ]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=10), last=st.integers(40, 100))
def test_daily_runs_and_one_late_run_record_the_same_alerts(
    steps: list[tuple[str, int, int]], last: int
) -> None:
    daily, late = new_app(), new_app()
    run_plan(daily, steps, True, last)
    run_plan(late, steps, False, last)
    assert recorded_alerts(daily) == recorded_alerts(late)
    # Each alert once, thresholds of a day in order.
    keys = [(k, d.get("threshold"), d.get("crossed_on"), d.get("invoice_number"), d.get("days"))
            for k, d in recorded_alerts(daily)]  # fmt: skip
    assert len(keys) == len(set(keys))
    for app in (daily, late):
        assert_balanced(app)
        # payable_to_microsoft = what is booked (invoiced, or accrued before) minus payments
        # applied to invoices.
        row = ms_view(app, START + timedelta(days=last), historical=False).get("USD")
        if row is None:
            continue
        open_total = sum((Decimal(i["open"]) for i in row["invoices"]), Decimal(0))
        invoiced_periods = {i["billing_period"] for i in row["invoices"]}
        accrued_rest = sum(
            (Decimal(e.data["cost"]) for e in app.charge_events()
             if e.data["billing_period"] not in invoiced_periods), Decimal(0),
        )  # fmt: skip
        payable = -balances(app).get(("payable_to_microsoft", "USD"), Decimal(0))
        assert payable == open_total + accrued_rest


def test_the_check_runs_inside_collections(app: LedgerApplication) -> None:
    from ledger.app.microsoft import collections_and_microsoft

    jan_and_feb(app)
    set_credit_limit(app, Decimal("1000.00"), "USD", date(2025, 1, 1))
    fired = collections_and_microsoft(app, date(2025, 3, 1))
    assert [(f["customer_id"], f["event_type"], f.get("threshold")) for f in fired
            if f["customer_id"].startswith("microsoft:")] == [
        ("microsoft:USD", "MicrosoftCreditThresholdCrossed", 70),
        ("microsoft:USD", "MicrosoftCreditThresholdCrossed", 85),
        ("microsoft:USD", "MicrosoftCreditThresholdCrossed", 100),
    ]  # fmt: skip
    assert collections_and_microsoft(app, date(2025, 3, 1), dry_run=True) == []


def test_meta_helpers_are_utc_days() -> None:
    assert start_of(date(2025, 1, 1)).tzinfo is UTC


def test_a_period_payment_counts_what_other_payments_applied(app: LedgerApplication) -> None:
    from ledger.app.microsoft import pay_period
    from ledger.domain.remittance import Overpayment

    jan_and_feb(app)
    invoice(app, "G-JAN", "2025-01", "800.00", date(2025, 4, 1))
    pay(app, Decimal("700.00"), "USD", "W-1", date(2025, 3, 1))
    with pytest.raises(Overpayment, match=r"exceeds the 100\.00 USD due .* for 2025-01"):
        pay_period(app, "2025-01", Decimal("150.00"), "W-P", date(2025, 3, 2))
    pay_period(app, "2025-01", Decimal("100.00"), "W-P", date(2025, 3, 2))
    row = ms_view(app, date(2025, 3, 3))["USD"]
    assert (row["invoices"][0]["paid"], row["invoices"][0]["open"]) == ("800.00", "0.00")
    assert balances(app)[("payable_to_microsoft", "USD")] == Decimal("-600.00")  # Feb accrued
    assert_balanced(app)


def test_payment_terms_are_configurable_and_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from ledger.config import Settings

    monkeypatch.setenv("LEDGER_MICROSOFT_PAYMENT_TERMS_DAYS", "45")
    assert Settings().microsoft_payment_terms_days == 45
    monkeypatch.setenv("LEDGER_MICROSOFT_PAYMENT_TERMS_DAYS", "-1")
    with pytest.raises(ValidationError, match="microsoft_payment_terms_days"):
        Settings()
    monkeypatch.delenv("LEDGER_MICROSOFT_PAYMENT_TERMS_DAYS")
    assert Settings().microsoft_payment_terms_days == 60
