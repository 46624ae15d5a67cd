"""What every projection is: a pure fold of SPEC §5 events into JSON rows, keyed by string.

The same fold runs on three feeds: Kafka (live), the event store (rebuild) and a customer's
stream up to a date (as-of). Storage lives elsewhere; rows here are plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

Event = dict[str, Any]
Row = dict[str, Any]
Rows = dict[str, Row]


class Projection(Protocol):
    name: str

    def keys(self, event: Event) -> list[str]:
        """The rows this event changes (none for events the projection ignores)."""
        ...

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        """The row after the event."""
        ...


def fold(projection: Projection, events: Iterable[Event], rows: Rows | None = None) -> Rows:
    """Apply events in order to in-memory rows."""
    rows = {} if rows is None else rows
    for event in events:
        for key in projection.keys(event):
            rows[key] = projection.apply(key, rows.get(key), event)
    return rows


def occurred_by(events: Iterable[Event], cutoff: datetime) -> Iterable[Event]:
    """Events whose business time is at or before the cutoff (as-of views)."""
    return (e for e in events if datetime.fromisoformat(e["occurred_at"]) <= cutoff)


def dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def days_between(later: date, earlier: date) -> int:
    return (later - earlier).days
