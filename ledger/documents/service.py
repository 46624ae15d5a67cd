"""Finding a document's events in the store: one customer's stream (`stream_events`), or
for an invoice id alone, the stream it names (`INV-<customer>-<YYYY-MM>`) else a scan of
the log. Raises DocumentNotFound (unknown customer, invoice or notice)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from ledger.app.application import LedgerApplication
from ledger.documents.model import (
    DocumentNotFound,
    Invoice,
    Notice,
    Statement,
    invoice_document,
    notice_document,
    statement_document,
)
from ledger.domain.ids import normalize_id

_NAMED = re.compile(r"^INV-(.+)-[0-9]{4}-[0-9]{2}(-.*)?$")


def customer_events(app: LedgerApplication, customer_id: str) -> list[dict[str, Any]]:
    """The customer's events (SPEC §5 shape, stream order). Raises DocumentNotFound."""
    from ledger.api.history import stream_events  # ledger.api's app imports this module

    events = stream_events(app, customer_id)
    if not events or events[0]["event_type"] != "CustomerRegistered":
        raise DocumentNotFound(f"customer_id: {customer_id!r} is not registered")
    return events


def _invoice_customer(app: LedgerApplication, invoice_id: str) -> str:
    named = _NAMED.match(invoice_id)
    if named:
        try:
            events = customer_events(app, named.group(1))
        except DocumentNotFound:
            events = []
        if any(e["data"].get("invoice_id") == invoice_id for e in events):
            return str(events[0]["customer_id"])
    from ledger.app.views import published_events

    for event in published_events(app):
        if event["event_type"] in ("InvoiceIssued", "DebitMemoIssued") and (
            event["data"].get("invoice_id") == invoice_id
        ):
            return str(event["customer_id"])
    raise DocumentNotFound(f"invoice_id: {invoice_id!r} is not an invoice in this ledger")


def find_invoice(
    app: LedgerApplication, invoice_id: str, customer_id: str | None = None
) -> Invoice:
    """The invoice, of `customer_id` when given (else whoever it belongs to)."""
    owner = normalize_id(customer_id) if customer_id else _invoice_customer(app, invoice_id)
    return invoice_document(customer_events(app, owner), invoice_id)


def find_statement(app: LedgerApplication, customer_id: str, start: date, end: date) -> Statement:
    return statement_document(customer_events(app, customer_id), start, end)


def find_notice(app: LedgerApplication, customer_id: str, event_id: str) -> Notice:
    return notice_document(customer_events(app, customer_id), event_id, app.policies)


def default_period(app: LedgerApplication, customer_id: str, today: date) -> tuple[date, date]:
    """The statement's default span: from the customer's registration to today (UTC)."""
    from projections.base import utc_date

    first = customer_events(app, customer_id)[0]
    return date.fromisoformat(utc_date(first["occurred_at"])), today
