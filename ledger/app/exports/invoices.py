"""The invoices of a billing period across customers, as the invoices view has them (SPEC
§12): `invoice_id`, `billing_period`, `invoice_date`, `due_date`, `subtotal`, `tax`, `total`,
`paid`, `credited`, `written_off`, `open`, `status`, plus `customer_id` and `currency` (an
export spans customers). Amounts are decimal strings with the currency's minor units.

`invoices_view` takes each invoice's figures from the invoices view's `invoice_row`; a store
written before tax and write-offs existed reads as rate 0 and nothing written off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from projections.accounts import AccountsProjection
from projections.base import Event, Row, fold
from projections.invoices import invoice_row

INVOICE_COLUMNS = (
    "invoice_id", "billing_period", "invoice_date", "due_date", "subtotal", "tax", "total",
    "paid", "credited", "written_off", "open", "status", "customer_id", "currency",
)  # fmt: skip
ACCOUNTS = AccountsProjection()


def invoices_view(row: Row) -> list[dict[str, Any]]:
    """The SPEC §12 invoice rows of one customer's accounts row (oldest first), with
    `customer_id` and `currency`: the invoices view's own rows (projections/invoices.py
    `invoice_row`), so an export never disagrees with `ledger show invoices`."""
    currency, today = row["currency"], datetime.now(UTC).date()
    out = [
        {**invoice_row(invoice_id, invoice, currency, today), "customer_id": row["customer_id"]}
        for invoice_id, invoice in row["invoices"].items()
    ]
    out.sort(key=lambda r: (r["invoice_date"] or "", r["invoice_id"]))
    return [{column: r[column] for column in INVOICE_COLUMNS} for r in out]


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
