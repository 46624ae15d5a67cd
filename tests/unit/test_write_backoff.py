"""Issue #14.4: a writer that loses to another writer retries with growing, jittered pauses
until the other is done, and gives up with one clear error (StoreBusy), never a traceback."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError

from ledger.app.application import LedgerApplication
from ledger.app.backoff import StoreBusy, with_backoff
from ledger.app.ingest import RawRecord, process_records
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import customer_registered


def test_retries_with_growing_jittered_pauses_until_the_other_writer_is_done() -> None:
    pauses: list[float] = []
    failures = iter([IntegrityError("UNIQUE constraint failed")] * 6
                    + [OperationalError("database is locked")])  # fmt: skip

    def attempt() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "saved"

    assert with_backoff(attempt, what="test", timeout=60, sleep=pauses.append) == "saved"
    assert len(pauses) == 7
    caps = [min(0.05 * 2**n, 2.0) for n in range(7)]
    assert all(0 <= p <= cap for p, cap in zip(pauses, caps, strict=True))
    assert len(set(pauses)) > 1  # jitter: not one fixed delay


def test_gives_up_with_store_busy_after_the_timeout() -> None:
    def attempt() -> None:
        raise IntegrityError("UNIQUE constraint failed: stored_events")

    with pytest.raises(StoreBusy, match="other writers kept changing"):
        with_backoff(attempt, what="ingest", timeout=0.2)


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        with_backoff(attempt, what="ingest", timeout=10, sleep=lambda _: None)
    assert calls == [1]


def test_a_store_that_stays_busy_is_not_blamed_on_the_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = LedgerApplication(eventsourcing_env("memory://"))

    def always_first(*args: object, **kwargs: object) -> None:
        raise IntegrityError("another writer got in first")

    monkeypatch.setattr(app, "handle_batch", always_first)
    record = RawRecord(value=customer_registered("c1"), source="f", offset=1)
    with pytest.raises(StoreBusy):
        process_records(app, [record, record], retry_timeout=0.1)
