"""The ingest batch cache (LedgerApplication.handle_batch keeps accounts in memory between
batches): what another process wrote is never missed, and a failed batch leaves nothing
behind. Two applications on one SQLite file play two processes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from ledger.app.application import LedgerApplication
from ledger.app.ingest import RawRecord, process_records
from tests.helpers import (
    charge,
    customer_registered,
    msg,
    payment,
    refund,
    support_interaction,
    support_ticket_opened,
)


def two_processes(tmp_path: Path) -> tuple[LedgerApplication, LedgerApplication]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "ledger.db"), "SQLITE_LOCK_TIMEOUT": "30"}  # fmt: skip
    return LedgerApplication(env), LedgerApplication(env)


def statuses(app: LedgerApplication, *raws: str) -> list[str]:
    return [o.status for o in app.handle_batch([msg(r) for r in raws]).outcomes]


def test_a_refusal_on_a_stale_cached_account_is_decided_again_on_fresh_state(
    tmp_path: Path,
) -> None:
    consumer, other = two_processes(tmp_path)
    assert statuses(consumer, customer_registered("c1")) == ["applied"]  # now cached
    assert statuses(other, payment("c1", "P-1", "100.00")) == ["applied"]
    # The cached account has no credit; the stream has 100.00 of it.
    result = consumer.handle_batch([msg(refund("c1", "RF-1", "60.00"))])
    assert [o.status for o in result.outcomes] == ["applied"]
    assert consumer.get("c1").unapplied_credit() == 40


def test_an_unknown_ticket_on_a_stale_cached_account_is_checked_against_the_store(
    tmp_path: Path,
) -> None:
    consumer, other = two_processes(tmp_path)
    statuses(consumer, customer_registered("c1"))
    statuses(other, support_ticket_opened("c1", "T-1"))
    assert statuses(consumer, support_interaction("c1", "T-1")) == ["applied"]


def test_a_refusal_that_stands_on_fresh_state_is_still_a_refusal(tmp_path: Path) -> None:
    consumer, other = two_processes(tmp_path)
    statuses(consumer, customer_registered("c1"))
    statuses(other, payment("c1", "P-1", "10.00"))
    result = consumer.handle_batch([msg(refund("c1", "RF-1", "60.00"))])
    assert [o.status for o in result.outcomes] == ["rejected"]
    assert result.outcomes[0].error is not None
    assert result.outcomes[0].error.code == "insufficient_credit"


def test_a_write_on_a_stale_cached_account_is_retried_on_fresh_state(tmp_path: Path) -> None:
    consumer, other = two_processes(tmp_path)
    statuses(consumer, customer_registered("c1"))
    statuses(other, charge("c1", "CH-1", "10.00"))
    records = [RawRecord(charge("c1", "CH-2", "20.00"), "billing.charges", 0, 1)]
    counts = process_records(consumer, records)  # IntegrityError once, then fresh
    assert counts.applied == 1
    assert sorted(consumer.get("c1").unbilled) == ["CH-1", "CH-2"]
    # And the cache now holds the fresh account: the next batch applies directly.
    assert statuses(consumer, charge("c1", "CH-3", "30.00")) == ["applied"]
    assert consumer.get("c1").version == 4


def test_a_batch_whose_save_fails_leaves_no_trace_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer, _ = two_processes(tmp_path)
    statuses(consumer, customer_registered("c1"))
    real_put = consumer.events.put
    calls = {"n": 0}

    def failing_put(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("database is down")
        return real_put(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(consumer.events, "put", failing_put)
    with pytest.raises(OperationalError):
        consumer.handle_batch([msg(charge("c1", "CH-1", "10.00"))])
    # The in-memory account was changed before the failed save; it must not be reused.
    assert statuses(consumer, charge("c1", "CH-1", "10.00")) == ["applied"]
    assert statuses(consumer, charge("c1", "CH-2", "10.00")) == ["applied"]
    account = consumer.get("c1")
    assert account.version == 3
    assert sorted(account.unbilled) == ["CH-1", "CH-2"]


def test_other_saves_in_the_same_process_are_seen_by_the_next_batch(tmp_path: Path) -> None:
    app, _ = two_processes(tmp_path)
    statuses(app, customer_registered("c1"), charge("c1", "CH-1", "100.00"))
    assert app.run_invoices("2025-01", date(2025, 2, 1)) == ["INV-c1-2025-01"]
    assert statuses(app, payment("c1", "P-1", "100.00")) == ["applied"]
    account = app.get("c1")
    assert account.outstanding() == 0
    assert account.unapplied_credit() == 0


def test_a_dry_run_of_collections_changes_nothing_the_next_batch_sees(tmp_path: Path) -> None:
    app, _ = two_processes(tmp_path)
    statuses(app, customer_registered("c1"), charge("c1", "CH-1", "100.00"))
    app.run_invoices("2025-01", date(2025, 2, 1))
    fired = app.run_collections(date(2025, 4, 30), dry_run=True)
    assert fired  # reminder, final notice, suspension
    version = app.get("c1").version
    assert statuses(app, payment("c1", "P-1", "10.00")) == ["applied"]
    assert app.get("c1").version == version + 2  # PaymentReceived, PaymentApplied


def test_the_cache_can_be_switched_off(tmp_path: Path) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "ledger.db"), "INGEST_CACHE_MAXSIZE": "0"}  # fmt: skip
    app = LedgerApplication(env)
    assert statuses(app, customer_registered("c1"), charge("c1", "CH-1", "1.00")) == [
        "applied", "applied",
    ]  # fmt: skip
    assert statuses(app, charge("c1", "CH-2", "1.00")) == ["applied"]
    assert app.get("c1").version == 3


def test_the_cache_holds_at_most_its_budget_of_events(tmp_path: Path) -> None:
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
           "SQLITE_DBNAME": str(tmp_path / "ledger.db"),
           "INGEST_CACHE_MAX_EVENTS": "5"}  # fmt: skip
    app = LedgerApplication(env)
    statuses(app, customer_registered("a"), charge("a", "CH-1", "1.00"))  # a: 2 events
    statuses(app, customer_registered("b"), charge("b", "CH-1", "1.00"))  # b: 2 events
    assert list(app._cache) == ["a", "b"]
    statuses(app, charge("a", "CH-2", "1.00"))  # a: 3 events, most recent
    assert list(app._cache) == ["b", "a"] and app._cache_events == 5
    statuses(app, charge("b", "CH-2", "1.00"), charge("b", "CH-3", "1.00"))  # b: 4 events
    assert list(app._cache) == ["b"] and app._cache_events == 4  # a was the oldest
    statuses(app, charge("b", "CH-4", "1.00"), charge("b", "CH-5", "1.00"))  # 6 > budget
    assert list(app._cache) == [] and app._cache_events == 0
    assert statuses(app, charge("a", "CH-3", "1.00"), charge("b", "CH-6", "1.00")) == [
        "applied", "applied",
    ]  # fmt: skip
    assert app.get("a").version == 4 and app.get("b").version == 7
