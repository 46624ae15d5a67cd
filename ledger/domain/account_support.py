"""Support tickets on a customer's account: open, log an interaction, escalate, resolve.

`CustomerAccount` (ledger/domain/account.py) inherits these commands and mutators.
"""

from __future__ import annotations

from typing import Any

from ledger.domain import events as ev
from ledger.domain.account_state import AccountState, TicketStatus
from ledger.domain.errors import InvalidState, UnknownReference
from ledger.domain.stream import Meta


class SupportTickets(AccountState):
    def _known_ticket(self, ticket_id: str) -> TicketStatus:
        if ticket_id not in self.tickets:
            raise UnknownReference(
                f"ticket_id: {ticket_id!r} is not a ticket of this customer", field="ticket_id"
            )
        return self.tickets[ticket_id]

    def open_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, "ticket", payload["ticket_id"]):
            return False
        self._emit(ev.SupportTicketOpened, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketOpened(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "open"
        self._remember(event, "ticket", data["ticket_id"])

    def log_interaction(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta):
            return False
        self._known_ticket(payload["ticket_id"])
        self._emit(ev.SupportInteractionLogged, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportInteractionLogged(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._remember(event)

    def escalate_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta):
            return False
        if self._known_ticket(payload["ticket_id"]) == "resolved":
            raise InvalidState(
                f"ticket_id: {payload['ticket_id']!r} is resolved; open a new ticket",
                field="ticket_id",
            )
        self._emit(ev.SupportTicketEscalated, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketEscalated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "escalated"
        self._remember(event)

    def resolve_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, "resolution", payload["ticket_id"]):
            return False
        if self._known_ticket(payload["ticket_id"]) == "resolved":
            raise InvalidState(
                f"ticket_id: {payload['ticket_id']!r} is already resolved", field="ticket_id"
            )
        self._emit(ev.SupportTicketResolved, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketResolved(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "resolved"
        self._remember(event, "resolution", data["ticket_id"])
