"""`ledger collections schedule`: service mode for collections.

Runs `ledger collections run` for today's date (UTC) every day at a fixed time of day (UTC),
until SIGTERM/SIGINT. The equivalent cron line, for operators who prefer cron, is
`5 6 * * * ledger collections run` (06:05 UTC when cron runs in UTC). Runs are idempotent and
catch up on every step that became due (SPEC §4), so a missed or repeated run does no harm.

The clock and the stop flag are injected: `next_run` is pure, and the loop never sleeps longer
than `max_nap` seconds at a time, so it notices a stop request or a clock jump quickly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

import structlog

from ledger.domain.account import utc_day
from ledger.domain.errors import UnknownPolicy

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
RunCollections = Callable[[date], Sequence[dict[str, Any]]]

# ASCII digits, anchored at the true end (`$` would take "06:05\n").
_AT_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])\Z", re.ASCII)


class Stop(Protocol):
    """What the loop needs of `consumers.kafka_support.StopFlag`."""

    @property
    def is_set(self) -> bool: ...

    def wait(self, seconds: float) -> bool: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_at(text: str) -> time:
    """`HH:MM` (24-hour, UTC) -> time. Raises ValueError with a readable message."""
    match = _AT_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 23:59, UTC)")
    return time(int(match.group(1)), int(match.group(2)), tzinfo=UTC)


def next_run(now: datetime, at: time, after: datetime | None = None) -> datetime:
    """The next moment to run: the first `at` (UTC) that is not before `now` and is later
    than `after` (the scheduled time of the last run, so one time slot never runs twice).

    A process started at 06:05:00 exactly runs at once; started at 06:05:01, tomorrow.
    """
    now = now.astimezone(UTC)
    slot = at.replace(tzinfo=None)
    day = now.date()
    candidate = datetime.combine(day, slot, tzinfo=UTC)
    while candidate < now or (after is not None and candidate <= after):
        day += timedelta(days=1)
        candidate = datetime.combine(day, slot, tzinfo=UTC)
    return candidate


class CollectionsSchedule:
    """Runs `run(today)` every day at `at` until `stop` is set.

    `once_now` also runs once right away at start (for today), e.g. after downtime that
    missed the day's slot; it does not replace the day's scheduled run. A failed run is
    logged and retried every `retry_seconds` for the same date until it succeeds, the date
    changes (the next day's run catches up) or a stop is requested.
    """

    def __init__(
        self,
        run: RunCollections,
        at: time,
        stop: Stop,
        *,
        clock: Clock = utc_now,
        retry_seconds: float = 60.0,
        max_nap: float = 60.0,
    ) -> None:
        self.run = run
        self.at = at
        self.stop = stop
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.max_nap = max_nap
        self.runs = 0

    def loop(self, *, once_now: bool = False) -> int:
        """Run until stopped; returns how many runs succeeded."""
        log.info("collections.schedule.started", at=self.at.strftime("%H:%M"), once_now=once_now)
        if once_now:
            self.run_today()
        last: datetime | None = None
        while not self.stop.is_set:
            when = next_run(self.clock(), self.at, last)
            log.info("collections.schedule.waiting", next_run=when.isoformat())
            if not self.sleep_until(when):
                break
            last = when
            self.run_today()
        log.info("collections.schedule.stopped", runs=self.runs)
        return self.runs

    def sleep_until(self, when: datetime) -> bool:
        """Wait until the clock reaches `when`: True then, False if stopped first."""
        while not self.stop.is_set:
            remaining = (when - self.clock()).total_seconds()
            if remaining <= 0:
                return True
            self.stop.wait(min(remaining, self.max_nap))
        return False

    def run_today(self) -> bool:
        """One run for today's date (UTC), retried on failure. True when it succeeded."""
        as_of = utc_day(self.clock())
        attempt = 0
        while not self.stop.is_set:
            attempt += 1
            started = self.clock()
            try:
                fired = self.run(as_of)
            except UnknownPolicy as error:
                # Every other customer was done; retrying cannot define a missing policy.
                log.error(
                    "collections.schedule.unknown_policy", as_of=as_of.isoformat(),
                    error=error.message,
                )  # fmt: skip
                fired = getattr(error, "fired", [])
            except Exception as error:  # a service loop keeps going; the log says why
                log.error(
                    "collections.schedule.run_failed", as_of=as_of.isoformat(),
                    attempt=attempt, error=f"{type(error).__name__}: {error}",
                    retry_in_seconds=self.retry_seconds,
                )  # fmt: skip
                if self.stop.wait(self.retry_seconds) or utc_day(self.clock()) != as_of:
                    return False
                continue
            self.runs += 1
            by_type: dict[str, int] = {}
            for item in fired:
                by_type[item["event_type"]] = by_type.get(item["event_type"], 0) + 1
            log.info(
                "collections.schedule.ran", as_of=as_of.isoformat(), events=len(fired),
                by_type=by_type, attempt=attempt,
                seconds=round((self.clock() - started).total_seconds(), 3),
            )  # fmt: skip
            return True
        return False
