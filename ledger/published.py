"""The SPEC §5 shape of a stored event: what goes out on `ledger.events` and what every
projection consumes, whether it comes from Kafka, the event store or an as-of replay."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, uuid5

from ledger.domain.events import LedgerEvent
from ledger.domain.ids import normalize_id

SCHEMA_VERSION = 1


def event_id(customer_id: str, position: int) -> str:
    """Deterministic, so a re-published event keeps its id."""
    return str(uuid5(NAMESPACE_URL, f"csp-ledger:event:{customer_id}:{position}"))


def to_published(event: LedgerEvent, global_position: int) -> dict[str, Any]:
    customer_id = event.customer_id
    return {
        # The id of a stored event never changes: derived from the customer id as stored.
        "event_id": event_id(customer_id, event.originator_version),
        "event_type": type(event).__name__,
        "schema_version": SCHEMA_VERSION,
        # Shown in the ledger's spelling (SPEC §2): a stream registered before that rule
        # under an upper-case GUID feeds the same views and keys as the lower-case id.
        "customer_id": normalize_id(customer_id),
        "stream_position": event.originator_version,
        "global_position": global_position,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.timestamp.isoformat(),
        "message_id": event.message_id,
        "data": event.data,
    }
