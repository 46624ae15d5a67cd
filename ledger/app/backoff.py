"""Concurrent writers take turns: retry a write that another writer got in first to, with
exponential backoff and jitter, up to a time budget (then StoreBusy)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.domain.errors import LedgerError

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StoreBusy(LedgerError):
    """Other writers kept winning the store for longer than the retry budget."""

    code = "store_busy"


WRITE_RETRY_TIMEOUT = float(os.environ.get("LEDGER_WRITE_RETRY_TIMEOUT", "600"))


def _lost_to_another_writer(error: BaseException) -> bool:
    if isinstance(error, IntegrityError):  # same stream version / message decided first
        return True
    # SQLite: the other writer held the file lock for longer than the lock timeout.
    return isinstance(error, OperationalError) and "locked" in str(error).lower()


def with_backoff(
    attempt: Callable[[], T],
    *,
    what: str,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """attempt(), again each time another writer got in first (IntegrityError, SQLite
    locked), after an exponential backoff with full jitter (0.05 s doubling up to 2 s), so
    concurrent writers (two `ledger ingest`, an invoice run during `ledger consume`) take
    turns instead of failing. Raises StoreBusy after `timeout` seconds in all (default
    LEDGER_WRITE_RETRY_TIMEOUT, 600 s); any other error at once."""
    budget = WRITE_RETRY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + budget
    cap = 0.05
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except (IntegrityError, OperationalError) as error:
            if not _lost_to_another_writer(error):
                raise
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{what}: other writers kept changing the same data for {budget:.0f} s "
                    f"({tries} tries); try again when they are done"
                ) from error
            delay = random.uniform(0, cap)  # jitter, not security
            log.info("store.retry_concurrent_write", what=what, attempt=tries,
                     retry_in=round(delay, 3))  # fmt: skip
            sleep(min(delay, max(0.0, deadline - time.monotonic())))
            cap = min(cap * 2, 2.0)
