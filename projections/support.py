"""One row per support ticket: status, minutes, billable minutes, escalations to Microsoft."""

from __future__ import annotations

from typing import Any

from ledger.domain.personal import ERASED
from projections.base import Event, Row, Rows, utc_instant

SUPPORT_EVENTS = {
    "SupportTicketOpened", "SupportInteractionLogged", "SupportTicketEscalated",
    "SupportTicketResolved",
}  # fmt: skip


class SupportProjection:
    name = "support"

    def keys(self, event: Event) -> list[str]:
        if event["event_type"] == "CustomerPersonalDataErased":  # SPEC §13
            return [f"{event['customer_id']}|{t}" for t in event["data"].get("ticket_ids", [])]
        if event["event_type"] not in SUPPORT_EVENTS:
            return []
        return [f"{event['customer_id']}|{event['data']['ticket_id']}"]

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        data, kind = event["data"], event["event_type"]
        if kind == "CustomerPersonalDataErased":
            return _erased(key, row)
        row = row or {
            "ticket_id": data["ticket_id"], "customer_id": event["customer_id"],
            "status": "open", "category": None, "severity": None, "channel": None,
            "subject": None, "opened_at": None, "resolved_at": None, "minutes": 0,
            "billable_minutes": 0, "escalations": [],
        }  # fmt: skip
        if kind == "SupportTicketOpened":
            row.update(
                category=data["category"], severity=data["severity"], channel=data["channel"],
                subject=data["subject"], opened_at=event["occurred_at"],
            )  # fmt: skip
        elif kind == "SupportInteractionLogged":
            row["minutes"] += data["minutes"]
            if data["billable"]:
                row["billable_minutes"] += data["minutes"]
        elif kind == "SupportTicketEscalated":
            row["status"] = "escalated"
            row["escalations"].append(
                {"vehicle": data["vehicle"], "microsoft_case_id": data.get("microsoft_case_id"),
                 "at": event["occurred_at"]}
            )  # fmt: skip
            # In business-time order (then by content), not in the order they arrived.
            row["escalations"].sort(
                key=lambda e: (utc_instant(e["at"]), e["vehicle"], e["microsoft_case_id"] or "")
            )
        elif kind == "SupportTicketResolved":
            row["status"] = "resolved"
            row["resolved_at"] = event["occurred_at"]
        return row


def _erased(key: str, row: Row | None) -> Row:
    """The ticket's subject erased (a ticket the fold has not met yet, e.g. opened after an
    as-of date by business time, starts as a bare row)."""
    customer_id, _, ticket_id = key.rpartition("|")
    row = dict(row) if row is not None else {
        "ticket_id": ticket_id, "customer_id": customer_id, "status": "open", "category": None,
        "severity": None, "channel": None, "subject": None, "opened_at": None,
        "resolved_at": None, "minutes": 0, "billable_minutes": 0, "escalations": [],
    }  # fmt: skip
    if row.get("subject") is not None:
        row["subject"] = ERASED
    return row


def support_view(rows: Rows, status: str | None = None) -> list[dict[str, Any]]:
    tickets = [dict(r) for _, r in sorted(rows.items())]
    return [t for t in tickets if status is None or t["status"] == status]
