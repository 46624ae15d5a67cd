"""A rebuild on several processes (ledger/store/shardedrebuild.py) leaves exactly the rows
and per-customer positions of the one-process rebuild, and of a fold of the event store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.app.views import PROJECTIONS, published_events
from ledger.bootstrap import build_app
from ledger.config import Settings
from ledger.store.db import Database
from ledger.store.readmodels import rebuild
from ledger.store.shardedrebuild import BY_CUSTOMER, shard_of, shares
from projections import summaries
from projections.base import fold
from projections.store import RowStore
from tests.helpers import (
    charge,
    credit_note,
    customer_registered,
    msgs,
    payment,
    support_ticket_opened,
    support_ticket_resolved,
)

pytestmark = pytest.mark.integration

CUSTOMERS = [f"c{i}" for i in range(12)]


def stored(url: str) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    """The rows, the customers' positions and the summary tables (projections/summaries.py)."""
    db = Database(url)
    try:
        store = RowStore(db)
        rows = {name: store.load_all(name) for name in PROJECTIONS}
        positions = store.positions(CUSTOMERS)
        kept = summaries.dump(db)
        db.commit()
        return rows, positions, kept
    finally:
        db.close()


def test_a_rebuild_on_three_processes_equals_one_on_one(fresh_pg_url: Callable[[], str]) -> None:
    url = fresh_pg_url()
    app = build_app(Settings(database_url=url))
    try:
        messages = [customer_registered(c) for c in CUSTOMERS]
        for n, c in enumerate(CUSTOMERS):
            messages += [charge(c, f"CH-{n}-1", amount="100.00"),
                         charge(c, f"CH-{n}-2", amount=f"{n}.25"),
                         payment(c, f"PAY-{n}", amount="30.00"),
                         support_ticket_opened(c, f"T-{n}")]  # fmt: skip
            if n % 3 == 0:
                messages += [credit_note(c, f"CN-{n}", amount="5.00"),
                             support_ticket_resolved(c, f"T-{n}")]  # fmt: skip
        app.handle_batch(msgs(messages))
        # The customers fall into every shard: each worker has a share to fold.
        assert {shard_of(c, 3) for c in CUSTOMERS} == {0, 1, 2}
        expected = {name: fold(p, published_events(app)) for name, p in PROJECTIONS.items()}

        rebuild(app, Database(url), workers=1)
        one = stored(url)
        rebuild(app, Database(url), workers=3)
        three = stored(url)
    finally:
        app.close()
    assert three == one
    assert three[0] == expected
    assert set(three[1]) == set(CUSTOMERS)
    assert three[2] == summaries.dump_of(expected)  # the summaries of the folded rows
    assert len(three[2]["customer_summaries"]) == len(CUSTOMERS)


def test_each_projection_is_folded_whole_once_or_split_by_customer_in_every_share() -> None:
    names = list(PROJECTIONS)
    for workers in (2, 3, 4):
        split = shares(names, workers)
        assert [s.shard for s in split] == list(range(workers))
        wholes = [n for s in split for n in s.whole]
        assert sorted(wholes) == sorted(n for n in names if n not in BY_CUSTOMER)
        for s in split:
            assert set(s.by_customer) == BY_CUSTOMER & set(names)


def test_rows_copied_in_read_back_the_same_on_sqlite_and_postgresql(
    fresh_pg_url: Callable[[], str], tmp_path: Path
) -> None:
    for url in (f"sqlite:///{tmp_path / 'ledger.db'}", fresh_pg_url()):
        db = Database(url)
        try:
            store = RowStore(db)
            store.copy_docs("accounts", [("c1", '{"n":1}'), ("c2", '{"tab":"a\\tb"}')])
            db.commit()
            assert store.load_all("accounts") == {"c1": {"n": 1}, "c2": {"tab": "a\tb"}}
        finally:
            db.close()


def test_a_rebuild_asked_for_two_workers_on_sqlite_folds_in_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = build_app(Settings(database_url=url))
    try:
        app.handle_batch(msgs([customer_registered("c1"), charge("c1", "CH-1", amount="9.50")]))
        assert rebuild(app, Database(url), workers=2) == 2
        rows, _, kept = stored(url)
        expected = fold(PROJECTIONS["accounts"], published_events(app))
    finally:
        app.close()
    assert rows["accounts"] == expected
    assert kept["invoice_summaries"] == summaries.dump_of(rows)["invoice_summaries"]
