"""The ledger's PostgreSQL recorder (binary array inserts, multi-stream reads) stores exactly
what the library's own recorder stores, and the two read each other's rows."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.app.application import LedgerApplication
from ledger.app.decisions import REFUSED, Decision
from ledger.domain.account import account_id
from ledger.store.eventstore import eventsourcing_env
from ledger.store.pgrecorder import LedgerPostgresRecorder
from tests.helpers import charge, customer_registered, msgs, payment

pytestmark = pytest.mark.integration

LIBRARY = "eventsourcing.postgres:PostgresApplicationRecorder"


def test_the_ledger_uses_its_recorder_on_postgresql(fresh_pg_url: Callable[[], str]) -> None:
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    assert type(app.recorder) is LedgerPostgresRecorder


def test_rows_written_by_either_recorder_read_the_same(fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    ours = LedgerApplication(eventsourcing_env(url))
    theirs = LedgerApplication({**eventsourcing_env(url), "APPLICATION_RECORDER_TOPIC": LIBRARY})
    assert type(theirs.recorder) is PostgresApplicationRecorder
    ours.handle_batch(msgs([customer_registered("a"), charge("a", "CH-1", "10.00")]))
    theirs.handle_batch(msgs([customer_registered("b"), payment("b", "P-1", "5.00")]))
    ours.handle_batch(msgs([charge("b", "CH-2", "7.00"), charge("a", "CH-3", "1.00")]))
    for app in (ours, theirs):
        notes = app.recorder.select_notifications(1, 100)
        assert [n.id for n in notes] == sorted(n.id for n in notes)
        assert [(n.originator_id, n.originator_version) for n in notes] == [
            (account_id("a"), 1), (account_id("a"), 2), (account_id("b"), 1),
            (account_id("b"), 2), (account_id("b"), 3), (account_id("a"), 3),
        ]  # fmt: skip
        assert sorted(app.get("a").unbilled) == ["CH-1", "CH-3"]
        assert app.get("b").unapplied_credit() == 5
    mine = ours.recorder.select_notifications(1, 100)
    other = theirs.recorder.select_notifications(1, 100)
    assert [(n.topic, n.state) for n in mine] == [(n.topic, n.state) for n in other]


def test_streams_of_many_aggregates_in_one_query(fresh_pg_url: Callable[[], str]) -> None:
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    app.handle_batch(msgs([customer_registered("a"), customer_registered("b"),
                           charge("a", "CH-1", "1.00")]))  # fmt: skip
    recorder = app.recorder
    assert isinstance(recorder, LedgerPostgresRecorder)
    streams = recorder.select_streams([account_id("a"), account_id("b"), account_id("ghost")])
    assert sorted(streams) == sorted([account_id("a"), account_id("b")])
    assert [e.originator_version for e in streams[account_id("a")]] == [1, 2]
    assert streams[account_id("a")] == list(app.recorder.select_events(account_id("a")))
    assert recorder.select_streams([]) == {}


def test_a_version_written_twice_is_an_integrity_error(fresh_pg_url: Callable[[], str]) -> None:
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    app.handle_batch(msgs([customer_registered("a")]))
    stored = list(app.recorder.select_events(account_id("a")))
    with pytest.raises(IntegrityError):
        app.recorder.insert_events(stored)
    assert app.recorder.max_notification_id() == 1


def test_a_message_decided_twice_is_an_integrity_error(fresh_pg_url: Callable[[], str]) -> None:
    """The decisions go in by COPY: a key decided by another writer meanwhile still fails
    the whole batch, as the INSERT did, and a new row reads back column for column."""
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    batch = msgs([customer_registered("a")])
    app.handle_batch(batch)
    decided = app.select_decisions([batch[0].message_id])
    assert list(decided) == [batch[0].message_id]
    fresh = Decision("k-1", "f" * 64, "a", REFUSED, "conflict", "r\u00e9ason\n", "billing.x", 2,
                     2**40, "2026-01-01T00:00:00+00:00")  # fmt: skip
    with pytest.raises(IntegrityError):
        app.recorder.insert_events([], decisions=[fresh, *decided.values()])
    assert app.select_decisions(["k-1"]) == {}  # nothing of the failed batch is kept
    app.recorder.insert_events([], decisions=[fresh])
    assert app.select_decisions(["k-1"]) == {"k-1": fresh}
    assert app.recorder.max_notification_id() == 1


def test_a_batch_of_uncached_accounts_loads_them_in_one_query(
    fresh_pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_pg_url()
    writer = LedgerApplication(eventsourcing_env(url))
    writer.handle_batch(msgs([customer_registered(c) for c in "abc"]))
    reader = LedgerApplication(eventsourcing_env(url))
    calls: list[int] = []
    real = reader.recorder.select_events

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reader.recorder, "select_events", counting)
    result = reader.handle_batch(msgs([charge(c, f"CH-{c}", "1.00") for c in "abc"]))
    assert [o.status for o in result.outcomes] == ["applied"] * 3
    assert calls == []  # one select_streams instead of three select_events
    assert reader.get("b").version == 2


def test_a_batch_delivered_again_loads_no_stream(
    fresh_pg_url: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decisions say every message was applied: no account is needed, none is read (a
    second billing run over every customer reads no stream)."""
    url = fresh_pg_url()
    writer = LedgerApplication(eventsourcing_env(url))
    writer.handle_batch(msgs([customer_registered(c) for c in "abc"]))
    batch = [charge(c, f"CH-{c}", "1.00") for c in "abc"]
    writer.handle_batch(msgs(batch))
    reader = LedgerApplication(eventsourcing_env(url))  # a new process: nothing cached
    reads: list[str] = []
    for name in ("select_streams", "select_events"):
        real = getattr(reader.recorder, name)

        def counting(*args: object, _real: Callable[..., object] = real, _name: str = name,
                     **kwargs: object) -> object:  # fmt: skip
            reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(reader.recorder, name, counting)
    result = reader.handle_batch(msgs(batch))
    assert [o.status for o in result.outcomes] == ["duplicate"] * 3
    assert reads == []
    # One new message among them: only its customer's stream is read.
    result = reader.handle_batch(msgs([*batch, charge("b", "CH-b2", "2.00")]))
    assert [o.status for o in result.outcomes] == ["duplicate"] * 3 + ["applied"]
    assert reads == ["select_events"]  # one customer: the single-stream read
    assert reader.get("b").version == 3


def test_registration_is_read_without_the_stream(fresh_pg_url: Callable[[], str]) -> None:
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    registered = customer_registered("a", currency="EUR")
    app.handle_batch(msgs([registered, charge("a", "CH-1", "1.00", currency="EUR")]))
    registration = app.registration("a")
    assert registration is not None and registration["currency"] == "EUR"
    assert app.registration("nobody") is None


def test_notifications_read_the_same_as_the_library_reads_them(
    fresh_pg_url: Callable[[], str],
) -> None:
    url = fresh_pg_url()
    ours = LedgerApplication(eventsourcing_env(url))
    theirs = LedgerApplication({**eventsourcing_env(url), "APPLICATION_RECORDER_TOPIC": LIBRARY})
    ours.handle_batch(msgs([customer_registered("a"), customer_registered("b")]
                           + [charge("a", f"CH-{i}", "1.00") for i in range(5)]))  # fmt: skip
    registered = theirs.recorder.select_notifications(1, 1)[0].topic
    queries: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((1, 100), {}), ((3, 2), {}), ((None, 4), {}), ((2, 100), {"stop": 5}),
        ((1, 100), {"topics": [registered]}), ((1, 100), {"topics": (registered,), "stop": 1}),
        ((2, 3), {"inclusive_of_start": False}), ((99, 10), {}),
    ]  # fmt: skip
    for args, kwargs in queries:
        mine = ours.recorder.select_notifications(*args, **kwargs)  # type: ignore[arg-type]
        other = theirs.recorder.select_notifications(*args, **kwargs)  # type: ignore[arg-type]
        assert mine == other, (args, kwargs)
        assert all(type(n.state) is bytes for n in mine)


def test_writers_take_turns_without_blocking_vacuum(fresh_pg_url: Callable[[], str]) -> None:
    """The writers' lock keeps notification ids in commit order, and VACUUM's lock (SHARE
    UPDATE EXCLUSIVE, held here as an autovacuum holds it) does not stop a write."""
    url = fresh_pg_url()
    first = LedgerApplication(eventsourcing_env(url))
    second = LedgerApplication(eventsourcing_env(url))
    first.handle_batch(msgs([customer_registered("a"), customer_registered("b")]))
    table = first.recorder.events_table_name  # type: ignore[attr-defined]
    with psycopg.connect(url) as vacuum_like:
        vacuum_like.execute(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (first.handle_batch(msgs([charge("a", "CH-1", "1.00")])), done.set())
        )
        writer.start()
        assert done.wait(10), "a write waited for VACUUM's lock"
        vacuum_like.rollback()
    # Two writers still take turns: the second waits while the first holds the lock.
    with psycopg.connect(url) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(%s)",
            (first.recorder.writers_lock_id,),  # type: ignore[attr-defined]
        )
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (second.handle_batch(msgs([charge("b", "CH-2", "1.00")])), done.set())
        )
        writer.start()
        assert not done.wait(1.0), "a writer did not wait for the writers' lock"
        holder.rollback()
        assert done.wait(10)
    ids = [n.id for n in first.recorder.select_notifications(1, 10)]
    assert ids == [1, 2, 3, 4]


def test_events_written_out_before_the_lock_read_back_as_given(
    fresh_pg_url: Callable[[], str],
) -> None:
    """The INSERT's arrays are written out before the writers' lock (pgrecorder._Dumped):
    every value comes back as it went in (any bytes, versions beyond 32 bits, many streams)."""
    app = LedgerApplication(eventsourcing_env(fresh_pg_url()))
    recorder = app.recorder
    assert isinstance(recorder, LedgerPostgresRecorder)
    states = [b"", b"\x00\xff\\x00'\"", "é€".encode(), bytes(range(256)) * 8]
    stored = [
        StoredEvent(account_id(f"c{i % 3}"), 2**40 + i, f"topic:{i}", state)
        for i, state in enumerate(states * 3)
    ]
    ids = recorder.insert_events(stored)
    assert ids == list(range(1, len(stored) + 1))
    for i in range(3):
        back = list(recorder.select_events(account_id(f"c{i}")))
        assert back == [e for e in stored if e.originator_id == account_id(f"c{i}")]
