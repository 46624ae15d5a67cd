"""The invoices of a billing period across customers, as the invoices view has them (SPEC
§12): `invoice_id`, `billing_period`, `invoice_date`, `due_date`, `subtotal`, `tax`, `total`,
`paid`, `credited`, `written_off`, `open`, `status`, plus `customer_id` and `currency` (an
export spans customers). Amounts are decimal strings with the currency's minor units.

`invoices_view` is the one place that reads an invoice's figures: it takes the accounts
projection's per-invoice entries as they are today and reads fields stores may not have yet
with the documented defaults (`subtotal` = total, `tax` = 0, `written_off` = 0, `status`
derived), so a store without tax or write-offs keeps its figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt
from projections.accounts import AccountsProjection
from projections.base import Event, Row, dec, fold

INVOICE_COLUMNS = (
    "invoice_id", "billing_period", "invoice_date", "due_date", "subtotal", "tax", "total",
    "paid", "credited", "written_off", "open", "status", "customer_id", "currency",
)  # fmt: skip
STATUSES = ("open", "partially_paid", "paid", "written_off", "void")
ZERO = Decimal(0)
ACCOUNTS = AccountsProjection()


def invoices_view(row: Row) -> list[dict[str, Any]]:
    """The SPEC §12 invoice rows of one customer's accounts row (oldest first), with
    `customer_id` and `currency`. Status: `void` when voided; else `written_off` when nothing
    is open and part was written off, `paid` when nothing is open, `partially_paid` when
    something settled part of it, `open` otherwise."""
    currency = row["currency"]
    out = []
    for invoice_id, invoice in row["invoices"].items():
        total = dec(invoice["total"])
        subtotal = dec(invoice.get("subtotal", total))
        tax = dec(invoice.get("tax", "0"))
        paid, credited = dec(invoice.get("paid")), dec(invoice.get("credited"))
        written_off = dec(invoice.get("written_off"))
        open_amount = max(dec(invoice["remainder"]), ZERO)
        if invoice.get("status") == "void" or invoice.get("void"):
            status = "void"
        elif open_amount == 0:
            status = "written_off" if written_off > 0 else "paid"
        elif paid + credited + written_off > 0:
            status = "partially_paid"
        else:
            status = "open"
        out.append({
            "invoice_id": invoice_id, "billing_period": invoice.get("period"),
            "invoice_date": invoice.get("invoice_date"), "due_date": invoice["due_date"],
            "subtotal": fmt(subtotal, currency), "tax": fmt(tax, currency),
            "total": fmt(total, currency), "paid": fmt(paid, currency),
            "credited": fmt(credited, currency), "written_off": fmt(written_off, currency),
            "open": fmt(open_amount, currency), "status": status,
            "customer_id": row["customer_id"], "currency": currency,
        })  # fmt: skip
    out.sort(key=lambda r: (r["invoice_date"] or "", r["invoice_id"]))
    return out


def in_period(invoice: dict[str, Any], period: str) -> bool:
    """An invoice belongs to the billing period it billed; a debit memo (no billing period)
    to the month of its date."""
    if invoice["billing_period"] is not None:
        return bool(invoice["billing_period"] == period)
    return str(invoice["invoice_date"] or "").startswith(f"{period}-")


def account_row(events: list[Event]) -> Row | None:
    """The accounts projection's row of the customer whose events these are (None for a
    stream that is not a registered customer's)."""
    if not events:
        return None
    row = fold(ACCOUNTS, events).get(events[0]["customer_id"])
    return row if row is not None and row.get("currency") else None


def period_invoices(
    streams: Iterable[list[Event]], period: str
) -> Iterator[tuple[list[Event], dict[str, Any]]]:
    """(the customer's events, invoice row) of every invoice of `period`, customer by
    customer in the order of `streams` (one customer's events at a time in memory)."""
    for events in streams:
        row = account_row(events)
        if row is None:
            continue
        for invoice in invoices_view(row):
            if in_period(invoice, period):
                yield events, invoice
