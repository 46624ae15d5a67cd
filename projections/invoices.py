"""The SPEC §12 `invoices` view: one row per invoice (and debit memo) of a customer, from the
accounts projection's rows. `invoice_row` is the one place that turns a stored invoice into
its view row: the CLI, the API, exports and the console all call it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt
from projections.base import Row, Rows, dec

ZERO = Decimal(0)
STATUSES = ("open", "partially_paid", "paid", "written_off", "void")


def invoice_status(invoice: Row) -> str:
    """`void`; `open` (nothing settled it yet) or `partially_paid` while something is open;
    once nothing is open, `written_off` when bad debt closed (part of) it, else `paid`
    (settled by payments or credits; a credit invoice has nothing to pay)."""
    if invoice.get("void"):
        return "void"
    settled = dec(invoice.get("paid")) + dec(invoice.get("credited"))
    if dec(invoice["remainder"]) > 0:
        return "partially_paid" if settled > 0 else "open"
    return "written_off" if dec(invoice.get("written_off")) > 0 else "paid"


def invoice_row(invoice_id: str, invoice: Row, currency: str, as_of: date) -> dict[str, Any]:
    """The view row of one stored invoice (an entry of an accounts row's `invoices`):
    `invoice_id, kind, billing_period, invoice_date, due_date, currency, subtotal, tax, total,
    paid, credited, written_off, open, status, days_past_due` (amounts as decimal strings;
    `days_past_due` on `as_of`, 0 unless open). `paid` is cash (payments net of reversals),
    `credited` credit notes and credit invoices; total = paid + credited + written_off + open
    (a void invoice: all 0 but its figures)."""
    total, tax = dec(invoice["total"]), dec(invoice.get("tax"))
    remainder = dec(invoice["remainder"])
    status = invoice_status(invoice)
    days = (as_of - date.fromisoformat(invoice["due_date"])).days
    kind = invoice.get("kind") or ("debit_memo" if invoice_id.startswith("DM-") else "invoice")
    return {
        "invoice_id": invoice_id,
        "kind": kind,
        "billing_period": invoice.get("period"),
        "invoice_date": invoice.get("invoice_date"),
        "due_date": invoice["due_date"],
        "currency": currency,
        "subtotal": fmt(total - tax, currency),
        "tax": fmt(tax, currency),
        "total": fmt(total, currency),
        "paid": fmt(dec(invoice.get("paid")), currency),
        "credited": fmt(dec(invoice.get("credited")), currency),
        "written_off": fmt(dec(invoice.get("written_off")), currency),
        "open": fmt(remainder, currency),
        "status": status,
        "days_past_due": max(days, 0) if remainder > 0 else 0,
    }


def invoices_view(rows: Rows, as_of: date, customer_id: str | None = None) -> list[dict[str, Any]]:
    """Every invoice of every customer (or of `customer_id`), by customer, then invoice date
    and id; each row also carries its `customer_id`."""
    out = []
    for key, row in sorted(rows.items()):
        if not row.get("currency") or (customer_id is not None and key != customer_id):
            continue
        items = [
            {"customer_id": key, **invoice_row(iid, inv, row["currency"], as_of)}
            for iid, inv in row["invoices"].items()
        ]
        out.extend(sorted(items, key=lambda i: (i["invoice_date"] or "", i["invoice_id"])))
    return out
