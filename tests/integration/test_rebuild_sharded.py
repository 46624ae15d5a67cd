"""A rebuild on several processes (ledger/store/shardedrebuild.py) leaves exactly the rows
and per-customer positions of the one-process rebuild, and of a fold of the event store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.views import PROJECTIONS, published_events
from ledger.bootstrap import build_app
from ledger.config import Settings
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from ledger.store.readmodels import rebuild
from ledger.store.shardedrebuild import Share, fold_share, microsoft_streams
from projections import summaries
from projections.base import fold
from projections.merging import UnmergeableRows, merge_rows
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
from tests.integration.test_remittance_rebuild import RECORDED, business

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


def test_rows_across_customers_add_up_from_shares_with_microsofts_streams(
    fresh_pg_url: Callable[[], str],
) -> None:
    """Charges with Microsoft's cost in every share, Microsoft's invoices and payments (its
    own streams, all in share 0): the journal, remittance periods and Microsoft currencies
    are summed from the shares (projections/merging.py) to what one fold makes."""
    url = fresh_pg_url()
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    try:
        business(app)
        expected = {name: fold(p, published_events(app)) for name, p in PROJECTIONS.items()}
        assert expected["microsoft"] and expected["journal"]
        assert any(k.startswith("period|") for k in expected["remittance"])
        # Every share has streams, and rows across customers come from several shares.
        head = app.head_position()
        microsoft = microsoft_streams(Database(url), app, head)
        parts = [fold_share(url, Share(tuple(PROJECTIONS), k, 3, head, microsoft))
                 for k in range(3)]  # fmt: skip
        assert all(part.events for part in parts)
        assert sum(part.events for part in parts) == len(list(published_events(app)))
        journal_keys = [set(part.partial["journal"]) for part in parts]
        assert journal_keys[0] & journal_keys[1] & journal_keys[2]
        for workers in (2, 3):
            rebuild(app, Database(url), workers=workers)
            rows, _, kept = stored(url)
            assert rows == expected, workers
            assert kept == summaries.dump_of(expected)
    finally:
        app.close()


def test_rows_of_one_customer_folded_twice_are_refused() -> None:
    with pytest.raises(UnmergeableRows):
        merge_rows("accounts", [{"c1": {"n": 1}}, {"c1": {"n": 2}}])
    with pytest.raises(UnmergeableRows):
        merge_rows("remittance", [{"invoice|c1|I-1": {"total": "1"}},
                                  {"invoice|c1|I-1": {"total": "1"}}])  # fmt: skip
    merged = merge_rows("journal", [
        {"ar|USD": {"account": "ar", "currency": "USD", "debit": "1.50", "credit": "0"}},
        {"ar|USD": {"account": "ar", "currency": "USD", "debit": "2", "credit": "0.25"}},
    ])  # fmt: skip
    assert merged == {"ar|USD": {"account": "ar", "currency": "USD", "debit": "3.50",
                                 "credit": "0.25"}}  # fmt: skip


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
