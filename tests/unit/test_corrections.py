"""SPEC §12 rules on the aggregate and the views (in memory): a write-off never reinstates a
suspension and is never collected; credits reduce the invoice they name; a void keeps cash
refundable once, not twice; tax rounds half-even per invoice; a store written before tax
replays to the same figures."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.app.application import LedgerApplication
from ledger.app.views import compute_view
from ledger.domain.errors import InvalidState, UnknownReference
from ledger.domain.tax import credited_tax, invoice_tax
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import build, charge, credit_note, customer_registered, msg, payment, refund

C = "contoso"
RECORDED = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
V1_STORE = Path(__file__).parent.parent / "fixtures" / "v1_store.jsonl"


@pytest.fixture
def app() -> LedgerApplication:
    return LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)


def send(app: LedgerApplication, *raws: str) -> list[tuple[str, str | None]]:
    outcomes = app.handle_batch([msg(r) for r in raws]).outcomes
    return [(o.status, o.error.code if o.error else None) for o in outcomes]


def at(day: str) -> str:
    return f"{day}T10:00:00Z"


def billed(app: LedgerApplication, amount: str, **tax: str) -> str:
    """contoso (30 days' terms), one charge of 2025-01 invoiced on 2025-02-01 (due 03-03)."""
    assert send(
        app, customer_registered(C, occurred_at=at("2025-01-02"), **tax),
        charge(C, "CH-1", amount, billing_period="2025-01", occurred_at=at("2025-01-15")),
    ) == [("applied", None)] * 2  # fmt: skip
    assert app.run_invoices("2025-01", date(2025, 2, 1)) == [f"INV-{C}-2025-01"]
    return f"INV-{C}-2025-01"


def write_off(amount: str, day: str, **extra: str) -> str:
    return build("write_off", C, f"wo-{day}-{amount}", write_off_id=f"WO-{day}", amount=amount,
                 currency="USD", reason="insolvent", occurred_at=at(day), **extra)  # fmt: skip


def view(app: LedgerApplication, name: str, as_of: date = date(2025, 5, 1)) -> list[dict]:  # type: ignore[type-arg]
    return compute_view(app, name, as_of, customer_id=C)


def test_tax_rounds_half_even_once_per_invoice() -> None:
    assert invoice_tax(Decimal("100.025"), Decimal(20), False, "EUR") == Decimal("20.00")  # 20.005
    assert invoice_tax(Decimal("100.075"), Decimal(20), False, "EUR") == Decimal("20.02")  # 20.015
    assert invoice_tax(Decimal("100.00"), Decimal(20), True, "EUR") == 0  # exempt
    assert invoice_tax(Decimal("1000"), Decimal("8.875"), False, "JPY") == Decimal("89")  # 88.75
    assert credited_tax(Decimal("30.00"), Decimal("120.04"), Decimal("20.01"), "EUR") == Decimal(
        "5.00"
    )
    assert credited_tax(Decimal("500.00"), Decimal("120.00"), Decimal("20.00"), "EUR") == Decimal(
        "20.00"
    )  # never more than the invoice's tax


def test_an_exempt_customer_is_invoiced_no_tax(app: LedgerApplication) -> None:
    invoice = billed(app, "100.00", tax_rate="20", tax_exempt=True)
    [row] = view(app, "invoices")
    assert (row["invoice_id"], row["tax"], row["total"]) == (invoice, "0.00", "100.00")


def test_a_write_off_never_reinstates_and_is_neither_paid_nor_collected(
    app: LedgerApplication,
) -> None:
    billed(app, "100.00")
    app.run_collections(date(2025, 4, 2))  # 30 days past due, 100 > 10: suspended
    assert send(app, write_off("100.00", "2025-04-03")) == [("applied", None)]
    app.run_collections(date(2025, 4, 10))  # nothing overdue, yet bad debt is not payment
    [row] = view(app, "balances")
    assert (row["status"], row["written_off"], row["paid"], row["outstanding"], row["overdue"]) == (
        "suspended", "100.00", "0.00", "0.00", "0.00"
    )  # fmt: skip
    [remittance] = compute_view(app, "remittance", date(2025, 5, 1))
    assert remittance["collected_from_customers"] == "0.00"
    # Reversed, then paid: the recovery is a payment, and that reinstates.
    reversal = build("write_off_reversed", C, "wr-1", write_off_id="WO-2025-04-03",
                     reason="recovered", occurred_at=at("2025-04-20"))  # fmt: skip
    assert send(app, reversal, payment(C, "P-1", "100.00", occurred_at=at("2025-04-21"))) == [
        ("applied", None), ("applied", None),
    ]  # fmt: skip
    [row] = view(app, "balances")
    assert (row["status"], row["written_off"], row["paid"]) == ("active", "0.00", "100.00")
    # Reversed once only: the same reversal again is a duplicate, another one a conflict.
    assert send(app, reversal.replace("wr-1", "wr-2")) == [("duplicate", None)]
    again = reversal.replace("wr-1", "wr-3").replace("recovered", "other")
    assert send(app, again) == [("rejected", "conflict")]


def test_writing_off_more_than_is_open_names_the_amount(app: LedgerApplication) -> None:
    invoice = billed(app, "100.00")
    send(app, payment(C, "P-1", "60.00", occurred_at=at("2025-02-10")))
    outcome = app.handle_batch([msg(write_off("40.01", "2025-03-01", invoice_id=invoice))])
    [refused] = outcome.outcomes
    assert refused.error is not None and refused.error.code == "exceeds_open_amount"
    assert refused.error.field == "amount" and "40.00" in refused.error.message
    unknown = write_off("1.00", "2025-03-02", invoice_id="INV-contoso-1999-01")
    assert send(app, unknown) == [("rejected", "unknown_reference")]


def test_a_credit_note_reduces_the_invoice_it_names_not_the_oldest(
    app: LedgerApplication,
) -> None:
    send(app, customer_registered(C, occurred_at=at("2025-01-02"), tax_rate="20"))
    for period in ("2025-01", "2025-02"):
        send(app, charge(C, f"CH-{period}", "100.00", billing_period=period,
                         occurred_at=at(f"{period}-15")))  # fmt: skip
        app.run_invoices(period, date.fromisoformat(f"{period}-28"))
    send(app, credit_note(C, "CN-1", "60.00", invoice_id=f"INV-{C}-2025-02",
                          occurred_at=at("2025-03-01")))  # fmt: skip
    rows = {r["invoice_id"]: r for r in view(app, "invoices")}
    assert (rows[f"INV-{C}-2025-01"]["open"], rows[f"INV-{C}-2025-02"]["open"]) == (
        "120.00", "60.00"
    )  # fmt: skip
    tax = {r["billing_period"]: r for r in compute_view(app, "tax", date(2025, 5, 1))}
    assert (tax["2025-02"]["tax_credited"], tax["2025-02"]["tax_due"]) == ("10.00", "10.00")
    assert tax["2025-01"]["tax_credited"] == "0.00"


def test_a_void_after_a_refund_attempt_never_refunds_twice(app: LedgerApplication) -> None:
    invoice = billed(app, "100.00")
    send(app, payment(C, "P-1", "100.00", occurred_at=at("2025-02-10")))
    app.void_invoice(invoice, "wrong", at=datetime(2025, 2, 20, tzinfo=UTC))
    assert app.get(C).refundable_credit() == Decimal("100.00")
    with pytest.raises(InvalidState, match="already void"):
        app.void_invoice(invoice, "again")
    with pytest.raises(UnknownReference):
        app.void_invoice("INV-nobody-2025-01", "x")
    assert send(app, refund(C, "R-1", "100.00", occurred_at=at("2025-02-21"))) == [
        ("applied", None)
    ]
    # The reissue is owed in full: the refunded payment no longer settles anything.
    assert app.run_invoices("2025-01", date(2025, 2, 22)) == [f"{invoice}-2"]
    rows = {r["invoice_id"]: r for r in view(app, "invoices")}
    assert (rows[invoice]["status"], rows[f"{invoice}-2"]["open"]) == ("void", "100.00")
    [row] = view(app, "balances")
    assert (row["paid"], row["refunded"], row["billed"], row["outstanding"]) == (
        "100.00", "100.00", "100.00", "100.00"
    )  # fmt: skip
    assert app.run_invoices("2025-01", date(2025, 2, 22)) == []  # idempotent after reissue


def test_a_store_written_before_tax_keeps_its_figures() -> None:
    """tests/fixtures/v1_store.jsonl (written before SPEC §12) replays to the figures the
    code before tax showed (recorded from main at 63dcf8e): no tax, nothing written off."""
    app = LedgerApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    rows = [json.loads(text) for text in V1_STORE.read_text(encoding="utf-8").splitlines()]
    app.recorder.insert_events([
        StoredEvent(originator_id=UUID(r["originator_id"]),
                    originator_version=r["originator_version"], topic=r["topic"],
                    state=r["state"].encode("utf-8"))
        for r in rows
    ])  # fmt: skip
    day = date(2025, 6, 1)
    balances = compute_view(app, "balances", day)
    trial = compute_view(app, "trial-balance", day)
    expected = json.loads((V1_STORE.parent / "v1_store_figures.json").read_text())
    for row in balances:
        assert row.pop("written_off") == "0.00"
    assert (balances, trial) == (expected["balances"], expected["trial_balance"])
    assert all(r["tax_invoiced"] == "0.00" for r in compute_view(app, "tax", day))


def test_documents_show_tax_and_void(app: LedgerApplication) -> None:
    """SPEC §14: the invoice shows subtotal, tax and total, a void one is marked VOID; the
    statement closes on the balance after a write-off."""
    from ledger.documents.service import find_invoice, find_statement

    invoice = billed(app, "100.03", tax_rate="20")
    document = find_invoice(app, invoice)
    assert (document.subtotal, document.tax, document.total, document.void) == (
        Decimal("100.03"), Decimal("20.01"), Decimal("120.04"), False
    )  # fmt: skip
    app.void_invoice(invoice, "wrong", at=datetime(2025, 2, 20, tzinfo=UTC))
    assert find_invoice(app, invoice).void
    app.run_invoices("2025-01", date(2025, 2, 21))
    assert send(app, write_off("20.04", "2025-04-01")) == [("applied", None)]
    statement = find_statement(app, C, date(2025, 1, 1), date(2025, 5, 1))
    [row] = view(app, "balances")
    assert statement.closing_balance == Decimal(row["balance"]) == Decimal("100.00")
