"""Support messages (SPEC §3): ticket opened, interaction, escalated, resolved."""

from __future__ import annotations

from typing import ClassVar, Literal

from ledger.messages.envelope import Envelope
from ledger.messages.fields import (
    BusinessId,
    Category,
    Channel,
    Minutes,
    RequiredText,
    Severity,
    Text,
    Vehicle,
)


class SupportTicketOpenedMsg(Envelope):
    type: Literal["support_ticket_opened"] = "support_ticket_opened"
    _business_id_field: ClassVar[str | None] = "ticket_id"

    ticket_id: BusinessId
    channel: Channel
    category: Category
    severity: Severity
    subject: RequiredText


class SupportInteractionMsg(Envelope):
    type: Literal["support_interaction"] = "support_interaction"

    ticket_id: BusinessId
    minutes: Minutes
    note: Text
    billable: bool


class SupportEscalatedMsg(Envelope):
    type: Literal["support_escalated"] = "support_escalated"

    ticket_id: BusinessId
    vehicle: Vehicle
    microsoft_case_id: BusinessId | None = None


class SupportTicketResolvedMsg(Envelope):
    type: Literal["support_ticket_resolved"] = "support_ticket_resolved"

    ticket_id: BusinessId
    resolution: RequiredText
