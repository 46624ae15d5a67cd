"""The contract of `projections.store`: `RowStore` + `apply_events` behave the same on SQLite
(a temporary file) and on PostgreSQL (a fresh database) — rows saved and loaded, an event
delivered again (same global position) skipped, consumed offsets stored and read, a projection
cleared — and everything is in the caller's transaction. On PostgreSQL, where several
`ledger project` processes share one database, two writers handed the same events never both
apply them, and a rebuild does not lose what a live projector applied meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.store.db import Database
from projections.base import Event, Row, fold
from projections.store import RowStore, apply_events, apply_projections

pytestmark = pytest.mark.integration


class Totals:
    """A small projection: a row per customer (event count, amount, positions seen) and one
    row shared by every customer (as the journal's accounts are)."""

    name = "totals"

    def keys(self, event: Event) -> list[str]:
        if event["event_type"] == "Ignored":
            return []
        return [f"customer|{event['customer_id']}", "all"]

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        row = row or {"count": 0, "amount": "0", "positions": []}
        row["count"] += 1
        row["amount"] = str(Decimal(row["amount"]) + Decimal(event["data"]["amount"]))
        row["positions"].append(event["global_position"])
        return row


class Other(Totals):
    name = "other"


def ev(position: int, customer: str, amount: str = "1.00", kind: str = "Counted") -> Event:
    return {
        "global_position": position,
        "customer_id": customer,
        "event_type": kind,
        "occurred_at": "2026-01-15T10:00:00+00:00",
        "data": {"amount": amount},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rows.db'}"
    make: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
    return make()


@pytest.fixture
def connect(database_url: str) -> Iterator[Callable[[], Database]]:
    """Factory of connections to the test's database (all closed afterwards)."""
    opened: list[Database] = []

    def make() -> Database:
        opened.append(Database(database_url))
        return opened[-1]

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def store(connect: Callable[[], Database]) -> RowStore:
    return RowStore(connect())


def test_rows_are_saved_and_loaded(store: RowStore, connect: Callable[[], Database]) -> None:
    assert not store.has_rows("totals")
    store.save("totals", {"a": {"n": 1, "s": "x"}, "b": {"n": 2, "nested": {"k": [1, "2"]}}})
    store.save("other", {"a": {"n": 99}})
    store.db.commit()

    reader = RowStore(connect())  # another connection sees the committed rows
    assert reader.has_rows("totals")
    assert reader.load_all("totals") == {"a": {"n": 1, "s": "x"},
                                         "b": {"n": 2, "nested": {"k": [1, "2"]}}}  # fmt: skip
    assert reader.load("totals", ["b", "missing"]) == {"b": {"n": 2, "nested": {"k": [1, "2"]}}}
    assert reader.load("other", ["a"], lock=True) == {"a": {"n": 99}}
    reader.db.commit()

    store.save("totals", {"a": {"n": 3}})  # an upsert replaces the document
    store.db.commit()
    assert reader.load_all("totals")["a"] == {"n": 3}
    keys = [f"k{i:04d}" for i in range(1_200)]  # more keys than one IN (...) chunk
    store.save("many", {k: {"i": i} for i, k in enumerate(keys)})
    store.db.commit()
    assert reader.load("many", keys) == {k: {"i": i} for i, k in enumerate(keys)}
    assert reader.load("many", keys, lock=True) == {k: {"i": i} for i, k in enumerate(keys)}
    reader.db.commit()


def test_apply_events_folds_and_records_positions(store: RowStore) -> None:
    events = [ev(1, "c1", "10.00"), ev(2, "c2", "5.00"), ev(3, "c1", "2.50"),
              ev(4, "c2", "0.00", kind="Ignored")]  # fmt: skip
    assert apply_events(store, Totals(), events) == 4
    store.db.commit()
    rows = store.load_all("totals")
    assert rows == fold(Totals(), events)
    assert rows["customer|c1"] == {"count": 2, "amount": "12.50", "positions": [1, 3]}
    assert rows["all"]["count"] == 3
    # An event the projection ignores still moves its customer's position.
    assert store.customer_positions("totals", ["c1", "c2", "c3"]) == {"c1": 3, "c2": 4}
    assert store.position("totals") == 4
    assert store.position("other") == 0


def test_redelivered_events_are_skipped(store: RowStore) -> None:
    first = [ev(1, "c1", "10.00"), ev(2, "c2", "5.00"), ev(3, "c1", "1.00")]
    assert apply_events(store, Totals(), first) == 3
    store.db.commit()
    before = store.load_all("totals")

    # The same events again (a publisher re-sent its batch, a projector replayed offsets).
    assert apply_events(store, Totals(), first) == 0
    assert apply_events(store, Totals(), [ev(3, "c1", "1.00")]) == 0
    # A batch overlapping what was applied: only the new events count.
    assert apply_events(store, Totals(), [ev(2, "c2", "5.00"), ev(4, "c2", "7.00")]) == 1
    # A duplicate inside one batch counts once.
    assert apply_events(store, Totals(), [ev(5, "c3", "2.00"), ev(5, "c3", "2.00")]) == 1
    store.db.commit()
    rows = store.load_all("totals")
    assert rows["customer|c1"] == before["customer|c1"]
    assert rows["customer|c2"] == {"count": 2, "amount": "12.00", "positions": [2, 4]}
    assert rows["customer|c3"] == {"count": 1, "amount": "2.00", "positions": [5]}
    assert rows["all"] == {"count": 5, "amount": "25.00", "positions": [1, 2, 3, 4, 5]}
    # Positions are per projection: another projection applies the same events afresh.
    assert apply_events(store, Other(), first) == 3
    store.db.commit()
    assert store.load_all("other")["all"]["count"] == 3


def test_one_batch_applies_to_each_projection_what_it_has_not_applied(store: RowStore) -> None:
    """Projections at different positions in one batch (one was cleared, or is new): each
    gets exactly the events past its own positions, and its own head."""
    assert apply_events(store, Totals(), [ev(1, "c1"), ev(2, "c2")]) == 2
    store.db.commit()
    batch = [ev(1, "c1"), ev(2, "c2"), ev(3, "c1"), ev(3, "c1"), ev(4, "c3")]
    assert apply_projections(store, [Totals(), Other()], batch) == 2 + 4
    store.db.commit()
    assert store.load_all("totals")["all"]["positions"] == [1, 2, 3, 4]
    assert store.load_all("other")["all"]["positions"] == [1, 2, 3, 4]
    assert store.customer_positions("totals", ["c1", "c2", "c3"]) == {"c1": 3, "c2": 2, "c3": 4}
    assert store.customer_positions("other", ["c1", "c2", "c3"]) == {"c1": 3, "c2": 2, "c3": 4}
    assert (store.position("totals"), store.position("other")) == (4, 4)
    # Now at the same positions: a batch with old and new events applies the new to both.
    assert apply_projections(store, [Totals(), Other()], [ev(2, "c2"), ev(5, "c2")]) == 2
    store.db.commit()
    assert store.load_all("other")["customer|c2"]["positions"] == [2, 5]
    assert store.load_all("totals")["customer|c2"]["positions"] == [2, 5]


def test_offsets_are_stored_and_read(store: RowStore, connect: Callable[[], Database]) -> None:
    assert store.offsets("project", "ledger.events") == {}
    store.set_offsets("project", "ledger.events", {0: 10, 1: 0, 3: 7})
    store.set_offsets("project", "other.events", {0: 99})
    store.set_offsets("project-2", "ledger.events", {0: 1})
    store.db.commit()
    store.set_offsets("project", "ledger.events", {0: 12, 2: 5})  # upsert, partial
    store.db.commit()
    reader = RowStore(connect())
    assert reader.offsets("project", "ledger.events") == {0: 12, 1: 0, 2: 5, 3: 7}
    assert reader.offsets("project", "other.events") == {0: 99}
    assert reader.offsets("project-2", "ledger.events") == {0: 1}


def test_rows_positions_and_offsets_commit_or_roll_back_together(
    store: RowStore, connect: Callable[[], Database]
) -> None:
    apply_events(store, Totals(), [ev(1, "c1")])
    store.set_offsets("project", "ledger.events", {0: 1})
    store.db.commit()
    apply_events(store, Totals(), [ev(2, "c1"), ev(3, "c2")])
    store.set_offsets("project", "ledger.events", {0: 3})
    store.db.rollback()  # a crash before the commit

    reader = RowStore(connect())
    assert reader.load_all("totals") == fold(Totals(), [ev(1, "c1")])
    assert reader.customer_positions("totals", ["c1", "c2"]) == {"c1": 1}
    assert reader.offsets("project", "ledger.events") == {0: 1}
    reader.db.commit()
    # Replayed from the stored offsets, the batch applies exactly once.
    assert apply_events(store, Totals(), [ev(2, "c1"), ev(3, "c2")]) == 2
    store.db.commit()
    assert store.load_all("totals") == fold(Totals(), [ev(1, "c1"), ev(2, "c1"), ev(3, "c2")])


def test_clear_empties_one_projection(store: RowStore) -> None:
    events = [ev(1, "c1"), ev(2, "c2")]
    apply_events(store, Totals(), events)
    apply_events(store, Other(), events)
    store.set_offsets("project", "ledger.events", {0: 2})
    store.db.commit()
    store.clear("totals")
    store.db.commit()
    assert store.load_all("totals") == {}
    assert not store.has_rows("totals")
    assert store.customer_positions("totals", ["c1", "c2"]) == {}
    assert store.position("totals") == 0
    assert store.load_all("other") == fold(Other(), events)
    assert store.position("other") == 2
    assert store.offsets("project", "ledger.events") == {0: 2}
    # After a clear, the events apply again from scratch (what a rebuild relies on).
    assert apply_events(store, Totals(), events) == 2
    store.db.commit()
    assert store.load_all("totals") == fold(Totals(), events)


# ------------------------------------------------------------------- several processes (PG)


@pytest.fixture
def pg_connect(fresh_pg_url: Callable[[], str]) -> Iterator[Callable[[], Database]]:
    url = fresh_pg_url()
    opened: list[Database] = []

    def make() -> Database:
        opened.append(Database(url))
        return opened[-1]

    yield make
    for db in opened:
        db.close()


def test_two_writers_with_the_same_events_apply_them_once(
    pg_connect: Callable[[], Database],
) -> None:
    """A projector that lost its partitions (e.g. it waited out a database outage longer
    than max.poll.interval) and the one that took them over write the same batch at the same
    time: the second must see the first one's positions, not apply the events again."""
    first, second = RowStore(pg_connect()), RowStore(pg_connect())
    setup = [ev(1, "c1", "1.00"), ev(2, "c2", "1.00")]
    apply_events(first, Totals(), setup)
    first.db.commit()
    batch = [ev(3, "c1", "10.00"), ev(4, "c2", "20.00"), ev(5, "c3", "30.00")]
    assert apply_events(first, Totals(), batch) == 3  # not committed yet

    result: dict[str, Any] = {}

    def other_writer() -> None:
        try:
            result["applied"] = apply_events(second, Totals(), batch)
            second.db.commit()
        except BaseException as error:  # reported by the main thread
            result["error"] = error
            second.db.rollback()

    thread = threading.Thread(target=other_writer)
    thread.start()
    thread.join(timeout=1.5)
    assert thread.is_alive(), "the second writer did not wait for the first one's locks"
    first.db.commit()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["applied"] == 0
    rows = first.load_all("totals")
    assert rows == fold(Totals(), setup + batch)
    assert rows["all"] == {"count": 5, "amount": "62.00", "positions": [1, 2, 3, 4, 5]}


def test_rebuild_keeps_what_a_live_projector_applied_meanwhile(
    fresh_pg_url: Callable[[], str],
) -> None:
    """`ledger projections rebuild` while `ledger project` runs: events the projector applies
    after the rebuild has read the event store, but before it writes, must not be lost (the
    projector's offsets are past them: nobody would apply them again)."""
    from ledger.app.views import PROJECTIONS, published_events
    from ledger.bootstrap import build_app
    from ledger.config import Settings
    from ledger.store.readmodels import rebuild
    from tests.helpers import charge, customer_registered, msgs, payment

    url = fresh_pg_url()
    app = build_app(Settings(database_url=url))
    live, rebuilder = RowStore(Database(url)), Database(url)
    try:

        def project_everything() -> None:  # what a live `ledger project` does
            events = list(published_events(app))
            for projection in PROJECTIONS.values():
                apply_events(live, projection, events)
            live.db.commit()

        app.handle_batch(msgs([customer_registered("c1"), customer_registered("c2"),
                               charge("c1", "CH-1", amount="100.00")]))  # fmt: skip
        project_everything()
        calls: list[int] = []

        def meanwhile(done: int) -> None:
            if not calls:  # the rebuild has folded the event store and not written yet
                app.handle_batch(msgs([charge("c1", "CH-2", amount="50.00"),
                                       payment("c2", "PAY-1", amount="30.00")]))  # fmt: skip
                project_everything()
            calls.append(done)

        rebuild(app, rebuilder, progress=meanwhile)
        stored = {name: live.load_all(name) for name in PROJECTIONS}
        live.db.commit()
        expected = {name: fold(p, published_events(app)) for name, p in PROJECTIONS.items()}
        assert stored == expected
        assert stored["accounts"]["c1"]["unbilled_charges"] == {"CH-1": "100.00", "CH-2": "50.00"}
        # And the projector, handed those events again, does not count them twice.
        project_everything()
        assert {name: live.load_all(name) for name in PROJECTIONS} == expected
    finally:
        live.db.close()
        rebuilder.close()
        app.close()
