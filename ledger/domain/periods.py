"""Closed accounting periods (SPEC §13): one ledger-wide stream of `PeriodClosed` facts, and
the posting-date rule that keeps a closed period's figures from ever changing.

The stream is named ``ledger:periods`` (a pseudo customer id, like the Microsoft remittance
streams) and chained like every other stream, so checkpoints and `audit verify` cover it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.domain.errors import LedgerError
from ledger.domain.events import LedgerEvent
from ledger.domain.hashchain import GENESIS
from ledger.domain.stream import ChainedStream, Meta

PERIODS_STREAM = "ledger:periods"
PERIODS_ID: UUID = uuid5(NAMESPACE_URL, "csp-ledger:periods")


class PeriodsStarted(LedgerEvent, Aggregate.Created):
    """The ledger-wide stream of closed periods begins (with the first close)."""


class PeriodClosed(LedgerEvent):
    """A month's books are closed: data ``{"period": "YYYY-MM", "reason": str | None}``.
    Events recorded after it whose business date falls in that month post on the first day
    of the first open period after it."""


PERIOD_EVENT_TYPES = frozenset({"PeriodsStarted", "PeriodClosed"})


class PeriodClosedError(LedgerError):
    """A change refused because its period is closed (e.g. an invoice run)."""

    code = "period_closed"


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def first_day(period: str) -> date:
    return date(int(period[:4]), int(period[5:7]), 1)


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def posting_date(business: date, closed: Collection[str]) -> date:
    """The date a journal line posts on: its business date, or, when that falls in a closed
    period, the first day of the first open period after it (closed periods are skipped)."""
    period = period_of(business)
    if period not in closed:
        return business
    while period in closed:
        period = next_period(period)
    return first_day(period)


class LedgerPeriods(ChainedStream):
    """The closed periods, in the order they were closed."""

    @classmethod
    def start(cls, meta: Meta) -> LedgerPeriods:
        return cls._start(PeriodsStarted, PERIODS_ID, PERIODS_STREAM, {}, meta)

    def __init__(self) -> None:
        self.customer_id = PERIODS_STREAM
        self.head_hash = GENESIS
        self.closed: dict[str, dict[str, Any]] = {}  # period → {"closed_at", "reason"}

    def close(self, period: str, meta: Meta, reason: str | None = None) -> bool:
        """Close `period` (YYYY-MM). Returns False (no event) when it was closed already."""
        if period in self.closed:
            return False
        self._emit(PeriodClosed, {"period": period, "reason": reason}, meta)
        return True

    def _when_PeriodsStarted(self, data: dict[str, Any], event: LedgerEvent) -> None:
        self.customer_id = event.customer_id

    def _when_PeriodClosed(self, data: dict[str, Any], event: LedgerEvent) -> None:
        self.closed[data["period"]] = {
            "closed_at": event.timestamp.isoformat(),
            "reason": data.get("reason"),
        }
