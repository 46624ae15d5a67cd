"""The export rules as pure functions (SPEC §12): an unbalanced entry stops the journal export
before any of its lines is written; tax shared over invoice lines sums to the invoice's tax;
the invoices view reads figures stores may not have yet with defaults and derives `status`;
Xero rows of a taxed invoice; an invoice whose lines miss its subtotal is refused."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.app.exports.invoices import in_period, invoices_view
from ledger.app.exports.journal import (
    ExportTotals,
    UnbalancedExport,
    customer_of,
    export_lines,
    journal_export,
    memo_of,
)
from ledger.app.exports.xero import (
    Contact,
    XeroExportError,
    XeroOptions,
    contact_of,
    invoice_rows,
    line_taxes,
)
from ledger.documents.model import Customer, Invoice, InvoiceLine
from ledger.domain.postings import Posting
from projections.posting_dates import JournalLine

D = Decimal
ZERO = D(0)


def line(event_id: str, account: str, debit: str, credit: str, day: str = "2025-01-15",
         currency: str = "USD") -> JournalLine:  # fmt: skip
    event = {"event_id": event_id, "event_type": "ChargePosted", "customer_id": "acme",
             "occurred_at": f"{day}T10:00:00+00:00", "data": {"charge_id": event_id}}  # fmt: skip
    return JournalLine(day, event, Posting(account, currency, D(debit), D(credit)))


def test_an_unbalanced_entry_stops_the_export_before_its_lines() -> None:
    lines = [
        line("e1", "unbilled_receivable:acme", "10.00", "0"),
        line("e1", "revenue", "0", "10.00"),
        line("e2", "unbilled_receivable:acme", "7.00", "0"),
        line("e2", "revenue", "0", "6.99"),
    ]
    written = []
    with pytest.raises(UnbalancedExport, match=r"entry e2 \(ChargePosted of acme\) is off by "
                       r"0.01 USD"):  # fmt: skip
        for row in export_lines(lines, date(2025, 1, 1), date(2025, 1, 31), ExportTotals()):
            written.append(row)
    assert [r["entry_id"] for r in written] == ["e1", "e1"]


def test_entries_outside_the_window_are_not_checked_nor_written() -> None:
    lines = [
        line("e1", "cash", "3.00", "0", day="2024-12-31"),
        line("e2", "cash", "1.00", "0"),
        line("e2", "unapplied:acme", "0", "1.00"),
    ]
    totals = ExportTotals()
    rows = list(export_lines(lines, date(2025, 1, 1), date(2025, 1, 31), totals))
    assert [r["entry_id"] for r in rows] == ["e2", "e2"]
    assert (totals.rows, totals.debit, totals.credit) == (2, {"USD": D(1)}, {"USD": D(1)})


def test_totals_that_differ_in_a_currency_fail() -> None:
    totals = ExportTotals()
    totals.add("EUR", D("5"), D("4"))
    with pytest.raises(UnbalancedExport, match="EUR debits 5 differ from credits 4"):
        totals.check()


def test_partner_streams_have_no_customer_and_memos_say_what_settled_what() -> None:
    remit = {"event_type": "MicrosoftPaymentRecorded", "customer_id": "microsoft:2025-01:USD"}
    assert customer_of(remit) == ""
    assert customer_of({"event_type": "PaymentApplied", "customer_id": "acme"}) == "acme"
    assert memo_of({"source_type": "payment", "source_id": "PAY-1", "invoice_id": "I"}, "I") == (
        "payment PAY-1"
    )
    assert memo_of({"credit_id": "CN-1", "invoice_id": "INV-1", "reason": "goodwill"}, "CN-1") == (
        "invoice INV-1; goodwill"
    )
    assert memo_of({"reason": "goodwill"}) == "goodwill"


@given(
    st.lists(st.decimals(min_value=-500, max_value=5000, places=2), min_size=1, max_size=8),
    st.decimals(min_value=0, max_value=30, places=2),
)
def test_line_taxes_sum_to_the_invoice_tax(amounts: list[Decimal], rate: Decimal) -> None:
    subtotal = sum(amounts, ZERO)
    tax = (subtotal * rate / 100).quantize(D("0.01"))
    shares = line_taxes(amounts, tax, "USD")
    assert sum(shares, ZERO) == tax
    assert all(share == share.quantize(D("0.01")) for share in shares)


def test_line_taxes_in_proportion() -> None:
    assert line_taxes([D("100.00"), D("50.00"), D("50.00")], D("40.00"), "USD") == [
        D("20.00"), D("10.00"), D("10.00"),
    ]  # fmt: skip
    # 10.00 over thirds: 3.33 each, the largest line takes the cent left.
    assert line_taxes([D("30"), D("30"), D("30.01")], D("10.00"), "USD") == [
        D("3.33"), D("3.33"), D("3.34"),
    ]  # fmt: skip
    assert line_taxes([D("10"), D("-10")], ZERO, "USD") == [ZERO, ZERO]


def account_row(**invoice: Any) -> dict[str, Any]:
    base = {"due_date": "2025-03-03", "total": "120.00", "remainder": "120.00",
            "invoice_date": "2025-02-01", "period": "2025-01", "paid": "0",
            "credited": "0"}  # fmt: skip
    return {"customer_id": "acme", "currency": "USD",
            "invoices": {"INV-acme-2025-01": {**base, **invoice}}}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ("120.00", "0.00", "0.00", "open")),
        ({"remainder": "70.00", "paid": "50.00"}, ("120.00", "0.00", "0.00", "partially_paid")),
        ({"remainder": "0", "credited": "120.00"}, ("120.00", "0.00", "0.00", "paid")),
        # a taxed invoice: its subtotal is the total less the tax
        ({"subtotal": "100.00", "tax": "20.00", "remainder": "0", "paid": "70.00",
          "written_off": "50.00"}, ("100.00", "20.00", "50.00", "written_off")),
        ({"void": True, "remainder": "0"}, ("120.00", "0.00", "0.00", "void")),
    ],
)  # fmt: skip
def test_invoices_view_defaults_and_status(
    fields: dict[str, str], expected: tuple[str, str, str, str]
) -> None:
    [row] = invoices_view(account_row(**fields))
    assert (row["subtotal"], row["tax"], row["written_off"], row["status"]) == expected
    assert row["total"] == "120.00" and row["customer_id"] == "acme"


def test_a_debit_memo_belongs_to_the_month_of_its_date() -> None:
    memo = {"billing_period": None, "invoice_date": "2025-03-04"}
    assert in_period(memo, "2025-03") and not in_period(memo, "2025-02")
    assert in_period({"billing_period": "2025-02", "invoice_date": "2025-03-01"}, "2025-02")


def taxed_invoice(lines: list[InvoiceLine], subtotal: str, tax: str) -> Invoice:
    total = D(subtotal) + D(tax)
    return Invoice(
        customer=Customer("acme", "Acme GmbH", "EUR", "ap@acme.example"),
        invoice_id="INV-acme-2025-01", kind="invoice", void=False, period="2025-01",
        invoice_date="2025-02-01", due_date="2025-03-03", currency="EUR", lines=lines,
        subtotal=D(subtotal), tax=D(tax), total=total, paid=ZERO, amount_due=total,
    )  # fmt: skip


def test_xero_rows_of_a_taxed_invoice_carry_its_tax_to_the_cent() -> None:
    lines = [InvoiceLine("Microsoft 365 E3", "2025-01-01", "2025-01-31", D("3"), D("33.33"),
                         D("99.99")),
             InvoiceLine("Support", None, None, D("1"), D("0.01"), D("0.01"))]  # fmt: skip
    contact = Contact(("Hauptstr. 1", "10115 Berlin"), "DE")
    options = XeroOptions(tax_type="19% (VAT on Income)")
    rows = invoice_rows(taxed_invoice(lines, "100.00", "19.00"), contact, options)
    assert [(r["Quantity"], r["UnitAmount"], r["TaxAmount"], r["TaxType"]) for r in rows] == [
        ("3", "33.33", "19.00", "19% (VAT on Income)"),
        ("1", "0.01", "0.00", "19% (VAT on Income)"),
    ]  # fmt: skip
    first = rows[0]
    assert (first["POAddressLine1"], first["POAddressLine2"], first["POCountry"]) == (
        "Hauptstr. 1", "10115 Berlin", "DE",
    )  # fmt: skip
    assert (first["Total"], first["Currency"], first["ContactName"]) == (
        "119.00", "EUR", "Acme GmbH",
    )  # fmt: skip


def test_an_invoice_whose_lines_miss_its_subtotal_is_refused() -> None:
    lines = [InvoiceLine("E3", None, None, D("1"), D("90.00"), D("90.00"))]
    with pytest.raises(XeroExportError, match=r"INV-acme-2025-01: its lines sum to 90.00 EUR"):
        invoice_rows(taxed_invoice(lines, "100.00", "0"), Contact((), ""), XeroOptions())


def test_the_contact_is_the_latest_of_registration_and_updates_by_business_time() -> None:
    def event(kind: str, at: str, **data: object) -> dict[str, object]:
        return {"event_type": kind, "occurred_at": f"{at}T10:00:00+00:00", "data": data}

    events = [
        event("CustomerRegistered", "2025-01-01", country="US",
              address="1 Main St\nSuite 2\nSpringfield\nIL\nUSA"),
        event("CustomerUpdated", "2025-03-01", country="CA"),
        event("CustomerUpdated", "2025-02-01", country="MX", address=None),  # older, late
    ]  # fmt: skip
    contact = contact_of(events)
    assert contact == Contact(("1 Main St", "Suite 2", "Springfield", "IL, USA"), "CA")
    assert contact_of([]) == Contact((), "")


def test_progress_counts_the_events_read() -> None:
    at = "2025-01-15T10:00:00+00:00"
    events = [{"event_id": f"e{n}", "event_type": "SupportTicketOpened", "customer_id": "acme",
               "occurred_at": at, "data": {}} for n in range(2500)]  # fmt: skip
    seen: list[int] = []
    totals = ExportTotals()
    rows = list(journal_export(events, date(2025, 1, 1), date(2025, 1, 31), totals, seen.append))
    assert (rows, seen, totals.events) == ([], [1000, 2000, 2500], 2500)


def test_references_are_the_entry_own_document_and_new_kinds_get_one_too() -> None:
    def entry(kind: str, **data: str) -> JournalLine:
        event = {"event_id": kind, "event_type": kind, "customer_id": "acme",
                 "occurred_at": "2025-01-15T10:00:00+00:00", "data": data}  # fmt: skip
        return JournalLine("2025-01-15", event, Posting("cash", "USD", ZERO, ZERO))

    lines = [
        entry("CreditNoteIssued", credit_id="CN-1", invoice_id="INV-1", reason="goodwill"),
        entry("DebitMemoIssued", invoice_id="DM-PAY-1", payment_id="PAY-1"),
        # a kind the posting rules may learn later (SPEC §12 write-offs)
        entry("InvoiceWrittenOff", write_off_id="W-1", invoice_id="INV-2", reason="insolvent"),
    ]
    rows = list(export_lines(lines, date(2025, 1, 1), date(2025, 1, 31), ExportTotals()))
    assert [(r["reference"], r["memo"]) for r in rows] == [
        ("CN-1", "invoice INV-1; goodwill"),
        ("DM-PAY-1", "payment PAY-1"),
        ("INV-2", "write_off W-1; insolvent"),
    ]
