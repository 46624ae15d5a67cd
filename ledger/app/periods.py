"""Closing periods (SPEC §13), the use case: close a month, list the closed ones, refuse what
a closed period forbids. The rules are ledger/domain/periods.py."""

from __future__ import annotations

from typing import Any

import structlog
from eventsourcing.application import AggregateNotFoundError

from ledger.app.application import LedgerApplication
from ledger.domain.periods import PERIODS_ID, LedgerPeriods, PeriodClosedError
from ledger.domain.stream import Meta

log = structlog.get_logger(__name__)


def find_periods(app: LedgerApplication) -> LedgerPeriods | None:
    try:
        periods = app.repository.get(PERIODS_ID)
    except AggregateNotFoundError:
        return None
    assert isinstance(periods, LedgerPeriods)
    return periods


def close_period(app: LedgerApplication, period: str, reason: str | None = None) -> bool:
    """Record `PeriodClosed` for `period` (YYYY-MM, checked by the caller). Returns False when
    it was closed already (nothing recorded). Business time of the close is its instant."""
    now = app.clock()
    meta = Meta(occurred_at=now, recorded_at=now)
    periods = find_periods(app) or LedgerPeriods.start(meta)
    closed = periods.close(period, meta, reason)
    if closed:
        app.save(periods)
        log.info("period.closed", period=period)
    return closed


def closed_periods(app: LedgerApplication) -> list[dict[str, Any]]:
    """Rows ``{"period", "closed_at" (ISO 8601 UTC), "reason"}`` sorted by period."""
    periods = find_periods(app)
    if periods is None:
        return []
    return [{"period": p, **info} for p, info in sorted(periods.closed.items())]


def refuse_if_closed(app: LedgerApplication, period: str, what: str) -> None:
    """Raise PeriodClosedError naming the period when it is closed."""
    periods = find_periods(app)
    if periods is not None and period in periods.closed:
        raise PeriodClosedError(f"{what}: period {period} is closed", field="period")


__all__ = ["close_period", "closed_periods", "find_periods", "refuse_if_closed"]
