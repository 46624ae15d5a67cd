"""The SPEC §6 `remittance` view with concrete numbers, and paying Microsoft (SPEC §7):
two billing periods, three customers (one paid in full, one half, one not at all), before and
after Microsoft's invoice is reconciled and after partial payments to Microsoft."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.reconcile import import_recon_file
from ledger.app.views import compute_view
from ledger.domain import events as ev
from ledger.domain.errors import Conflict, CurrencyMismatch, InvalidState
from ledger.domain.remittance import Overpayment, remittance_stream
from ledger.published import to_published
from ledger.store.eventstore import eventsourcing_env
from projections.accounts import AccountsProjection
from projections.remittance import payment_status
from tests.fixtures.recon_gen import COLUMNS
from tests.helpers import charge, customer_registered, msg, payment

RECORDED = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
LOOK = date(2025, 6, 30)
A, B, C = "contoso", "fabrikam", "northwind"
FIELDS = [
    "billing_period", "currency", "cost_accrued", "microsoft_invoiced", "paid_to_microsoft",
    "due_to_microsoft", "due_date", "collected_from_customers", "exposure",
]  # fmt: skip
MONEY = FIELDS[2:]


@pytest.fixture
def app() -> LedgerApplication:
    return LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)


def apply_all(app: LedgerApplication, *raws: str) -> None:
    outcomes = app.handle_batch([msg(r) for r in raws]).outcomes
    refused = [(r, o.error) for r, o in zip(raws, outcomes, strict=True) if o.status != "applied"]
    assert not refused, refused


def period_charge(customer: str, charge_id: str, amount: str, cost: str, period: str,
                  **fields: Any) -> str:  # fmt: skip
    return charge(
        customer, charge_id, amount, cost=cost, billing_period=period,
        subscription_id=f"sub-{customer}", charge_start=f"{period}-01",
        charge_end=f"{period}-28", occurred_at=f"{period}-10T10:00:00Z", **fields,
    )  # fmt: skip


def business(app: LedgerApplication) -> None:
    """Jan: A 100 (cost 80), B 250 (200), C 50 (40). Feb: A 125 (100), B 75 (60), C a 30.00
    support fee (cost 0). Both periods invoiced; A pays 162.50 (Jan in full, half of Feb),
    B pays 125.00 (half of Jan), C pays nothing."""
    apply_all(app, *(customer_registered(c, occurred_at="2024-12-01T10:00:00Z") for c in (A, B, C)))
    apply_all(
        app,
        period_charge(A, "A-1", "100.00", "80.00", "2025-01"),
        period_charge(B, "B-1", "250.00", "200.00", "2025-01"),
        period_charge(C, "C-1", "50.00", "40.00", "2025-01"),
        period_charge(A, "A-2", "125.00", "100.00", "2025-02"),
        period_charge(B, "B-2", "75.00", "60.00", "2025-02"),
        period_charge(C, "C-2", "30.00", "0.00", "2025-02", charge_type="support"),
    )
    assert len(app.run_invoices("2025-01", date(2025, 2, 1))) == 3
    assert len(app.run_invoices("2025-02", date(2025, 3, 1))) == 3
    apply_all(
        app,
        payment(A, "PA", "162.50", occurred_at="2025-03-05T10:00:00Z"),
        payment(B, "PB", "125.00", occurred_at="2025-03-06T10:00:00Z"),
    )


def view(app: LedgerApplication, as_of: date = LOOK, historical: bool = False) -> dict[str, Any]:
    rows = compute_view(app, "remittance", as_of, historical=historical)
    assert all(list(r) == FIELDS for r in rows), rows
    return {r["billing_period"]: r for r in rows}


def values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[f] for f in MONEY)


def recon_csv(invoice: str, lines: list[tuple[str, str, str, str, str]]) -> bytes:
    """A Microsoft file: (CustomerId, SubscriptionId, ChargeType, start, Subtotal) per line;
    the charge ends on the 28th of the start month, like the ledger's charges above."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for customer, sub, kind, start, subtotal in lines:
        writer.writerow({
            "CustomerId": customer, "SubscriptionId": sub, "ChargeType": kind,
            "ChargeStartDate": start, "ChargeEndDate": start[:8] + "28", "Subtotal": subtotal,
            "Currency": "USD", "InvoiceNumber": invoice, "CustomerName": f"{customer}, Inc.",
        })  # fmt: skip
    return out.getvalue().encode()


JAN_FILE = recon_csv("G000000101", [
    (A, f"sub-{A}", "cycleCharge", "2025-01-01", "80.00"),
    (B, f"sub-{B}", "cycleCharge", "2025-01-01", "200.00"),
    (C, f"sub-{C}", "cycleCharge", "2025-01-01", "42.00"),  # ledger says 40.00
])  # fmt: skip


def import_jan(app: LedgerApplication, raw: bytes = JAN_FILE) -> bool:
    result = import_recon_file(app, raw, payment_terms_days=60, due_date=date(2025, 3, 15))
    return result.recorded


# ---- the view -------------------------------------------------------------------------------


def test_every_field_before_reconciliation(app: LedgerApplication) -> None:
    business(app)
    rows = view(app)

    # Jan collected: A 80 x 1 + B 200 x 125/250 + C 40 x 0 = 180; exposure 320 - 180.
    assert rows["2025-01"]["currency"] == "USD"
    assert values(rows["2025-01"]) == (
        "320.00", None, "0.00", "320.00", None, "180.00", "140.00",
    )  # fmt: skip
    # Feb collected: A 100 x 62.50/125 + B 60 x 0 + C's support fee costs nothing = 50.
    assert values(rows["2025-02"]) == (
        "160.00", None, "0.00", "160.00", None, "50.00", "110.00",
    )  # fmt: skip


def test_every_field_after_reconciliation_and_partial_payments(app: LedgerApplication) -> None:
    business(app)
    assert import_jan(app)
    rows = view(app)
    assert values(rows["2025-01"]) == (
        "320.00", "322.00", "0.00", "322.00", "2025-03-15", "180.00", "142.00",
    )  # fmt: skip
    assert values(rows["2025-02"]) == (
        "160.00", None, "0.00", "160.00", None, "50.00", "110.00",
    )  # fmt: skip

    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    app.pay_microsoft("2025-02", Decimal("100.00"), "WIRE-2", date(2025, 3, 20))  # accrued only
    rows = view(app)
    # Jan: 322 - 200 = 122 due, less than the 180 collected: no exposure.
    assert values(rows["2025-01"]) == (
        "320.00", "322.00", "200.00", "122.00", "2025-03-15", "180.00", "0.00",
    )  # fmt: skip
    # Feb (not reconciled): 160 accrued - 100 paid = 60 due; 60 - 50 collected = 10 exposed.
    assert values(rows["2025-02"]) == (
        "160.00", None, "100.00", "60.00", None, "50.00", "10.00",
    )  # fmt: skip


def test_as_of_a_past_day_shows_what_was_known_then(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)  # invoice dated 2025-02-01
    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))

    before_invoice = view(app, date(2025, 1, 31), historical=True)["2025-01"]
    assert values(before_invoice) == (
        "320.00", None, "0.00", "320.00", None, "0.00", "320.00",
    )  # fmt: skip
    before_payment = view(app, date(2025, 2, 28), historical=True)["2025-01"]
    assert values(before_payment)[1:4] == ("322.00", "0.00", "322.00")


def test_table_status_marks_overdue_and_due_within_seven_days(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)  # due 2025-03-15
    rows = view(app)
    assert payment_status(rows["2025-01"], date(2025, 3, 1)) == "open"
    assert payment_status(rows["2025-01"], date(2025, 3, 8)) == "due in 7d"
    assert payment_status(rows["2025-01"], date(2025, 3, 15)) == "due in 0d"
    assert payment_status(rows["2025-01"], date(2025, 3, 18)) == "OVERDUE 3d"
    assert payment_status(rows["2025-02"], date(2025, 3, 18)) == "accruing"
    app.pay_microsoft("2025-01", Decimal("322.00"), "WIRE-ALL", date(2025, 3, 10))
    assert payment_status(view(app)["2025-01"], date(2025, 3, 18)) == "paid"


# ---- paying Microsoft ---------------------------------------------------------------------


def test_same_payment_reference_twice_has_no_second_effect(app: LedgerApplication) -> None:
    business(app)
    _, first = app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    _, again = app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 2))
    assert (first, again) == (True, False)
    assert view(app)["2025-01"]["paid_to_microsoft"] == "200.00"
    with pytest.raises(Conflict, match="WIRE-1"):
        app.pay_microsoft("2025-01", Decimal("210.00"), "WIRE-1", date(2025, 3, 1))


def test_overpayment_is_refused_unless_forced(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)
    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    with pytest.raises(Overpayment, match=r"exceeds the 122\.00 USD due"):
        app.pay_microsoft("2025-01", Decimal("150.00"), "WIRE-2", date(2025, 3, 2))
    # Before reconciliation the accrued cost is what is due.
    with pytest.raises(Overpayment, match=r"160\.00 USD due .*accrued"):
        app.pay_microsoft("2025-02", Decimal("160.01"), "WIRE-3", date(2025, 3, 2))

    remittance, applied = app.pay_microsoft(
        "2025-01", Decimal("150.00"), "WIRE-2", date(2025, 3, 2), force=True
    )
    assert applied and remittance.paid == Decimal("350.00")
    assert values(view(app)["2025-01"])[2:4] == ("350.00", "-28.00")
    assert view(app)["2025-01"]["exposure"] == "0.00"


def test_currency_mismatch_is_refused(app: LedgerApplication) -> None:
    business(app)
    with pytest.raises(CurrencyMismatch, match="EUR"):
        app.pay_microsoft("2025-01", Decimal("10.00"), "W-EUR", date(2025, 3, 1), "EUR")
    with pytest.raises(CurrencyMismatch):
        app.pay_microsoft("2025-01", Decimal("10.00"), "W-EUR", date(2025, 3, 1), "EUR",
                          force=True)  # fmt: skip
    with pytest.raises(InvalidState, match="give --currency"):
        app.pay_microsoft("2024-11", Decimal("10.00"), "W-NONE", date(2025, 3, 1))
    assert app.find_remittance("2025-01", "EUR") is None


def test_payments_post_to_the_journal_and_books_balance(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)
    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    app.pay_microsoft("2025-02", Decimal("100.00"), "WIRE-2", date(2025, 3, 20))
    rows = {r["account"]: r for r in compute_view(app, "trial-balance", LOOK)}
    payable = rows["payable_to_microsoft"]
    # Jan booked at Microsoft's 322.00 (accrued 320.00 + 2.00 to cost of sales), Feb accrued
    # 160.00: 482.00 owed, 300.00 paid.
    assert (payable["debit"], payable["credit"], payable["balance"]) == (
        "300.00", "482.00", "-182.00",
    )  # fmt: skip
    assert rows["cost_of_sales"]["balance"] == "482.00"
    assert sum(Decimal(r["balance"]) for r in rows.values()) == 0


# ---- the stream -----------------------------------------------------------------------------


def test_remittance_events_are_hash_chained_and_verified(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)
    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    remittance = app.find_remittance("2025-01", "USD")
    assert remittance is not None
    events = list(app.events.get(remittance.id))
    assert [type(e).__name__ for e in events] == [
        "MicrosoftRemittanceOpened", "MicrosoftInvoiceRecorded", "ReconciliationRecorded",
        "MicrosoftCostAdjusted", "MicrosoftPaymentRecorded",
    ]  # fmt: skip
    assert events[3].data["adjustment"] == "2.00"  # invoiced 322.00 - accrued 320.00
    assert {e.customer_id for e in events} == {remittance_stream("2025-01", "USD")}
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    checked, broken = app.verify_chains()
    assert broken is None and checked == app.head_position()

    published = to_published(events[1], 99)
    assert published["customer_id"] == "microsoft:2025-01:USD"
    assert published["data"]["amount"] == "322.00"
    assert published["data"]["line_count"] == 3
    report = events[2].data
    assert (report["matched"], report["missing_in_ledger"], report["missing_on_invoice"]) == (
        3, [], [],
    )  # fmt: skip
    assert report["amount_mismatches"] == [
        {"charge_id": "C-1", "ledger_cost": "40.00", "invoice_subtotal": "42.00"}
    ]


def test_remittance_streams_are_not_customers(app: LedgerApplication) -> None:
    business(app)
    import_jan(app)
    app.pay_microsoft("2025-01", Decimal("200.00"), "WIRE-1", date(2025, 3, 1))
    assert [r["customer_id"] for r in compute_view(app, "balances", LOOK)] == [A, B, C]
    assert app.customer_ids() == [A, B, C]
    remittance = app.find_remittance("2025-01", "USD")
    assert remittance is not None
    for event in app.events.get(remittance.id):
        assert isinstance(event, ev.LedgerEvent)
        assert AccountsProjection().keys(to_published(event, 1)) == []


def test_reimporting_the_same_file_changes_nothing(app: LedgerApplication) -> None:
    business(app)
    assert import_jan(app)
    head = app.head_position()
    assert not import_jan(app)
    assert app.head_position() == head
    # The same invoice number from another file is a conflict, not a silent second invoice.
    other = JAN_FILE.replace(b"42.00", b"40.00")
    with pytest.raises(Conflict, match="G000000101"):
        import_jan(app, other)
    assert app.head_position() == head
