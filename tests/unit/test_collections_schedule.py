"""`ledger collections schedule` (service mode): the next-run computation and the loop, on an
injected clock that only moves when the loop waits (no real sleeping); and the command
itself as a process: runs at start with --once-now, logs the run, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time as clock_time
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ledger.app.schedule import CollectionsSchedule, next_run, parse_at

AT = time(6, 5, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---- next_run -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2025-03-01T05:00:00", "2025-03-01T06:05:00"),  # later today
        ("2025-03-01T06:05:00", "2025-03-01T06:05:00"),  # exactly now: run now
        ("2025-03-01T06:05:00.000001", "2025-03-02T06:05:00"),  # just missed: tomorrow
        ("2025-03-01T23:59:59", "2025-03-02T06:05:00"),
        ("2024-02-28T07:00:00", "2024-02-29T06:05:00"),  # leap day
        ("2025-12-31T07:00:00", "2026-01-01T06:05:00"),  # new year
        ("2025-03-30T05:00:00", "2025-03-30T06:05:00"),  # DST day in Europe: UTC is UTC
    ],
)
def test_next_run_is_the_first_slot_not_before_now(now: str, expected: str) -> None:
    assert next_run(utc(now), AT) == utc(expected)


def test_next_run_never_repeats_the_slot_just_run() -> None:
    slot = utc("2025-03-01T06:05:00")
    # The run took no time at all (or the clock went back a little): still tomorrow.
    assert next_run(slot, AT, after=slot) == utc("2025-03-02T06:05:00")
    assert next_run(slot - timedelta(seconds=3), AT, after=slot) == utc("2025-03-02T06:05:00")
    assert next_run(utc("2025-03-01T09:00:00"), AT, after=slot) == utc("2025-03-02T06:05:00")


def test_next_run_converts_an_aware_now_to_utc() -> None:
    # 08:00 in Paris = 07:00 UTC: today's 06:05 UTC has passed.
    paris = datetime(2025, 3, 1, 7, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert next_run(paris, AT) == utc("2025-03-02T06:05:00")


@pytest.mark.parametrize("text", ["06:05", "00:00", "23:59", "12:30"])
def test_parse_at_accepts_hh_mm(text: str) -> None:
    parsed = parse_at(text)
    assert parsed.tzinfo is UTC and parsed.strftime("%H:%M") == text


@pytest.mark.parametrize("text", ["6:05", "24:00", "06:60", "0605", "06:05:00", "", "noon"])
def test_parse_at_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time of day HH:MM"):
        parse_at(text)


# ---- the loop on a fake clock ---------------------------------------------------------------


class FakeTime:
    """A clock and a stop flag in one: waiting moves the clock, nothing really sleeps."""

    def __init__(self, start: str) -> None:
        self.now = utc(start)
        self.stopped = False
        self.waits: list[float] = []

    def clock(self) -> datetime:
        return self.now

    @property
    def is_set(self) -> bool:
        return self.stopped

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += timedelta(seconds=seconds)
        return self.stopped


class Recorder:
    """The injected `run_collections`: records (as_of, clock at run time); can fail or stop."""

    def __init__(self, fake: FakeTime, stop_after: int, fail: int = 0) -> None:
        self.fake = fake
        self.stop_after = stop_after
        self.fail = fail
        self.calls: list[tuple[date, datetime]] = []

    def __call__(self, as_of: date) -> list[dict[str, Any]]:
        self.calls.append((as_of, self.fake.now))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database is down")
        if len(self.calls) >= self.stop_after:
            self.fake.stopped = True
        return [{"event_type": "DunningNoticeSent"}, {"event_type": "SubscriptionSuspended"}]


def test_runs_for_today_every_day_at_the_time() -> None:
    fake = FakeTime("2025-03-01T05:00:00")
    run = Recorder(fake, stop_after=3)
    schedule = CollectionsSchedule(run, AT, fake, clock=fake.clock)

    assert schedule.loop() == 3
    assert run.calls == [
        (date(2025, 3, day), utc(f"2025-03-{day:02d}T06:05:00")) for day in (1, 2, 3)
    ]
    assert max(fake.waits) <= 60  # never naps longer than a minute: stop requests are quick


def test_once_now_runs_at_start_and_keeps_the_days_slot() -> None:
    fake = FakeTime("2025-03-01T02:30:00")
    run = Recorder(fake, stop_after=3)
    CollectionsSchedule(run, AT, fake, clock=fake.clock).loop(once_now=True)
    assert run.calls == [
        (date(2025, 3, 1), utc("2025-03-01T02:30:00")),
        (date(2025, 3, 1), utc("2025-03-01T06:05:00")),
        (date(2025, 3, 2), utc("2025-03-02T06:05:00")),
    ]


def test_started_after_the_time_waits_for_tomorrow_unless_once_now() -> None:
    fake = FakeTime("2025-03-01T09:00:00")
    run = Recorder(fake, stop_after=1)
    CollectionsSchedule(run, AT, fake, clock=fake.clock).loop()
    assert run.calls == [(date(2025, 3, 2), utc("2025-03-02T06:05:00"))]


def test_a_failed_run_is_retried_for_the_same_day() -> None:
    fake = FakeTime("2025-03-01T06:00:00")
    run = Recorder(fake, stop_after=3, fail=2)
    schedule = CollectionsSchedule(run, AT, fake, clock=fake.clock, retry_seconds=60)
    schedule.loop()
    assert run.calls == [
        (date(2025, 3, 1), utc("2025-03-01T06:05:00")),
        (date(2025, 3, 1), utc("2025-03-01T06:06:00")),
        (date(2025, 3, 1), utc("2025-03-01T06:07:00")),
    ]
    assert schedule.runs == 1


def test_a_run_failing_all_day_gives_way_to_the_next_days_run() -> None:
    fake = FakeTime("2025-03-01T06:00:00")
    run = Recorder(fake, stop_after=10_000, fail=10_000)
    schedule = CollectionsSchedule(run, AT, fake, clock=fake.clock, retry_seconds=3600)
    fake_calls = run.calls

    def stop_on_day_3() -> datetime:
        if fake.now >= utc("2025-03-03T00:00:00"):
            fake.stopped = True
        return fake.now

    schedule.clock = stop_on_day_3
    schedule.loop()
    days = sorted({as_of for as_of, _ in fake_calls})
    assert days == [date(2025, 3, 1), date(2025, 3, 2)]
    assert fake_calls[0][1] == utc("2025-03-01T06:05:00")
    day2 = [at for as_of, at in fake_calls if as_of == date(2025, 3, 2)]
    assert day2[0] == utc("2025-03-02T06:05:00")
    assert schedule.runs == 0


def test_a_stop_while_waiting_ends_the_loop_without_running() -> None:
    fake = FakeTime("2025-03-01T05:00:00")
    run = Recorder(fake, stop_after=1)
    schedule = CollectionsSchedule(run, AT, fake, clock=fake.clock)
    original_wait = fake.wait

    def wait_then_stop(seconds: float) -> bool:
        fake.stopped = True  # SIGTERM arrives during the first nap
        return original_wait(seconds)

    fake.wait = wait_then_stop  # type: ignore[method-assign]
    assert schedule.loop() == 0
    assert run.calls == []


# ---- the command as a process ---------------------------------------------------------------


LEDGER_BIN = str(Path(sys.executable).with_name("ledger"))


def test_the_command_runs_at_start_logs_it_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}",
        LEDGER_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    # The slot is an hour away: only --once-now runs during the test.
    slot = (datetime.now(UTC) + timedelta(hours=1)).strftime("%H:%M")
    log_path = tmp_path / "schedule.log"
    started_on = datetime.now(UTC).date()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [LEDGER_BIN, "collections", "schedule", "--at", slot, "--once-now"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = clock_time.monotonic() + 60
        while "collections.schedule.waiting" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert clock_time.monotonic() < deadline, log_path.read_text()
            clock_time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    ran = [e for e in lines if e["event"] == "collections.schedule.ran"]
    assert len(ran) == 1
    assert ran[0]["as_of"] in {started_on.isoformat(), datetime.now(UTC).date().isoformat()}
    assert ran[0]["events"] == 0
    waiting = [e for e in lines if e["event"] == "collections.schedule.waiting"]
    assert waiting[0]["next_run"].endswith(f"T{slot}:00+00:00")
    assert lines[-1]["event"] == "collections.schedule.stopped"


def refuse_bad_time(tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    return subprocess.run(
        [LEDGER_BIN, "collections", "schedule", "--at", "25:00"],
        env=env, cwd=tmp_path, capture_output=True, timeout=60,
    )  # fmt: skip


def test_the_command_refuses_a_bad_time_with_exit_2_before_doing_anything(
    tmp_path: Path,
) -> None:
    done = refuse_bad_time(tmp_path)
    assert done.returncode == 2
    assert b"'25:00' is not a time of day HH:MM" in done.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_an_unknown_policy_is_logged_and_not_retried_all_day() -> None:
    """Issue #13.8: the run did every other customer; retrying cannot define the policy."""
    from structlog.testing import capture_logs

    from ledger.app.collections import CollectionsIncomplete
    from ledger.domain.errors import UnknownPolicy

    fake = FakeTime("2025-03-01T06:00:00")
    calls: list[date] = []

    def run(as_of: date) -> list[dict[str, Any]]:
        calls.append(as_of)
        fake.stopped = len(calls) >= 2
        gone = UnknownPolicy("customer c1: collections_policy 'no-suspend' is not defined")
        raise CollectionsIncomplete([gone], [{"event_type": "DunningNoticeSent"}])

    schedule = CollectionsSchedule(run, AT, fake, clock=fake.clock, retry_seconds=60)
    with capture_logs() as logs:
        schedule.loop()
    assert calls == [date(2025, 3, 1), date(2025, 3, 2)]  # once a day, no retries
    errors = [e for e in logs if e["event"] == "collections.schedule.unknown_policy"]
    assert len(errors) == 2 and "no-suspend" in errors[0]["error"]
