"""`ledger demo`'s sample documents: an invoice PDF, a statement of account and a suspension
notice of the demo's customer who was suspended, written next to the demo's database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ledger.app.application import LedgerApplication
from ledger.config import Settings
from ledger.documents.model import (
    invoice_document,
    invoice_ids,
    notice_document,
    statement_document,
)
from ledger.documents.profile import partner_profile
from ledger.documents.render import render_pdf
from ledger.documents.service import customer_events
from projections.base import utc_date

CUSTOMER = "tenant-001"  # in the demo: invoiced, reminded, suspended, paid and reinstated


def write_samples(
    app: LedgerApplication, settings: Settings, database: Path, day: date
) -> list[str]:
    """Write the three PDFs; returns the lines that name them (for the demo's output)."""
    profile = partner_profile(settings)
    events = customer_events(app, CUSTOMER)
    stem = database.with_suffix("")
    invoice = invoice_document(events, invoice_ids(events)[0])
    registered = date.fromisoformat(utc_date(events[0]["occurred_at"]))
    written = {
        f"{stem}-invoice-{invoice.invoice_id}.pdf": render_pdf(invoice, profile),
        f"{stem}-statement-{CUSTOMER}.pdf": render_pdf(
            statement_document(events, registered, day), profile
        ),
    }
    suspended = next(e for e in events if e["event_type"] == "SubscriptionSuspended")
    notice = notice_document(events, suspended["event_id"], app.policies)
    written[f"{stem}-notice-suspended-{CUSTOMER}.pdf"] = render_pdf(notice, profile)
    lines = ["", "Documents (SPEC §14, `ledger documents …`):"]
    for path, data in written.items():
        Path(path).write_bytes(data)
        lines.append(f"  {path}")
    return lines
