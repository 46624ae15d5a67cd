"""The memoised ISO text of timestamps and stream ids is the text the values write."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ledger.domain.isotext import iso_timestamp, uuid_text


def test_the_same_instant_in_other_offsets_keeps_its_own_text() -> None:
    utc = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == paris and hash(utc) == hash(paris)  # one key for a plain dict
    assert iso_timestamp(utc) == "2026-03-01T12:00:00+00:00"
    assert iso_timestamp(paris) == "2026-03-01T13:00:00+01:00"
    assert iso_timestamp(utc) == utc.isoformat()


def test_a_repeated_wall_time_keeps_its_offset() -> None:
    # 2025-10-26 02:30 happens twice in Paris: fold 0 is +02:00, fold 1 is +01:00.
    first = datetime(2025, 10, 26, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))
    second = first.replace(fold=1)
    assert iso_timestamp(first) == first.isoformat() == "2025-10-26T02:30:00+02:00"
    assert iso_timestamp(second) == second.isoformat() == "2025-10-26T02:30:00+01:00"


def test_microseconds_and_naive_values() -> None:
    for value in (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(2026, 1, 2, 3, 4)):
        assert iso_timestamp(value) == value.isoformat()


def test_many_values_stay_exact_past_the_memo_bound() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for second in range(20_000):
        value = start + timedelta(seconds=second)
        assert iso_timestamp(value) == value.isoformat()
    ids = [uuid.uuid4() for _ in range(10_000)]
    assert [uuid_text(u) for u in ids] == [str(u) for u in ids]
