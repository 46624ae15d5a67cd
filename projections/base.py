"""What every projection is: a pure fold of SPEC §5 events into JSON rows, keyed by string.

The same fold runs on three feeds: Kafka (live), the event store (rebuild) and a customer's
stream up to a date (as-of). Storage lives elsewhere; rows here are plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
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


@dataclass(frozen=True)
class Prepared:
    """A batch of events made ready to fold: the rows it changes (to load, and lock, first)
    and how to change them."""

    keys: set[str]
    apply: Callable[[Rows], None]


def prepare(projection: Projection, events: Sequence[Event]) -> Prepared:
    """A batch of events ready to fold into rows (`ledger project` loads and locks the rows
    in between). A projection may do a batch faster than event by event (`prepare_batch`:
    the journal sums its postings first); otherwise each goes through keys() and apply()."""
    custom = getattr(projection, "prepare_batch", None)
    if custom is not None:
        prepared: Prepared = custom(events)
        return prepared
    keyed = [(event, projection.keys(event)) for event in events]

    def apply(rows: Rows) -> None:
        for event, keys in keyed:
            for key in keys:
                rows[key] = projection.apply(key, rows.get(key), event)

    return Prepared({key for _, keys in keyed for key in keys}, apply)


class Folder:
    """Folds events one at a time into rows in memory (a rebuild). Call `finish()` after
    the last event: a projection's own folder may keep work for the end (the journal's
    posting sums)."""

    def __init__(self, projection: Projection, rows: Rows) -> None:
        self.keys = projection.keys
        self.apply = projection.apply
        self.rows = rows

    def __call__(self, event: Event) -> None:
        rows = self.rows
        for key in self.keys(event):
            rows[key] = self.apply(key, rows.get(key), event)

    def finish(self) -> None:
        """Nothing is left to do for a plain projection."""


def folder(projection: Projection, rows: Rows) -> Folder:
    custom = getattr(projection, "folder", None)
    if custom is not None:
        made: Folder = custom(rows)
        return made
    return Folder(projection, rows)


def fold(projection: Projection, events: Iterable[Event], rows: Rows | None = None) -> Rows:
    """Apply events in order to in-memory rows."""
    rows = {} if rows is None else rows
    prepare(projection, list(events)).apply(rows)
    return rows


def occurred_by(events: Iterable[Event], cutoff: datetime) -> Iterable[Event]:
    """Events whose business time is at or before the cutoff (as-of views)."""
    return (e for e in events if datetime.fromisoformat(e["occurred_at"]) <= cutoff)


def utc_date(timestamp: str) -> str:
    """The UTC calendar date (ISO) of an RFC 3339 timestamp, whatever its offset (SPEC §2):
    never a slice of the text, which is the date in the writer's zone."""
    instant = datetime.fromisoformat(timestamp)
    if instant.tzinfo is not None:
        instant = instant.astimezone(UTC)
    return instant.date().isoformat()


def utc_instant(timestamp: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (for ordering by business time)."""
    instant = datetime.fromisoformat(timestamp)
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def dec(value: Any) -> Decimal:
    if type(value) is str:  # what rows and events hold: parsed as is (the hot path)
        return Decimal(value)
    return Decimal(str(value)) if value is not None else Decimal(0)


def days_between(later: date, earlier: date) -> int:
    return (later - earlier).days
