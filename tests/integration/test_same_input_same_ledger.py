"""Issue #14 kinds 1-3 on every store (in memory, SQLite, PostgreSQL): a message is decided
once, store-wide, in the same transaction as its events; one poison message does not stop
the stream; a message_id is unique across customers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.decisions import REFUSED
from ledger.app.ingest import RawRecord, process_records
from ledger.domain.account import CustomerAccount
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import charge, customer_registered, payment, refund


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        fresh: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
        yield fresh()


def records(*lines: str, source: str = "input.jsonl", start: int = 1) -> list[RawRecord]:
    return [RawRecord(value=line, source=source, offset=n) for n, line in enumerate(lines, start)]


def test_a_refused_refund_stays_refused_after_a_later_payment(store_url: str) -> None:
    app = LedgerApplication(eventsourcing_env(store_url))
    lines = [
        customer_registered("c1"),
        refund("c1", "RF-1", "30.00"),  # no credit yet: refused
        payment("c1", "P-1", "100.00"),  # now there is credit
    ]
    first = process_records(app, records(*lines), store_dead_letters=True)
    assert (first.applied, first.deadlettered) == (2, 1)
    assert first.dead_letters[0].code == "insufficient_credit"
    credit = app.get("c1").unapplied_credit()
    head = app.head_position()

    # The same file again (a re-run, a crash and restart, Kafka redelivering the batch).
    again = process_records(app, records(*lines), store_dead_letters=True)

    assert (again.applied, again.duplicate, again.refused_before) == (0, 2, 1)
    assert again.deadlettered == 0  # recognised as refused, not a second dead letter
    assert app.get("c1").unapplied_credit() == credit == 100
    assert app.head_position() == head
    # Delivered from elsewhere too (another file, another offset): still refused.
    elsewhere = process_records(app, records(lines[1], source="other.jsonl", start=7))
    assert elsewhere.refused_before == 1 and app.head_position() == head


def test_replay_decides_a_refusal_again_on_purpose(store_url: str) -> None:
    app = LedgerApplication(eventsourcing_env(store_url))
    lines = [
        customer_registered("c1"),
        refund("c1", "RF-1", "30.00"),
        payment("c1", "P-1", "100.00"),
    ]
    process_records(app, records(*lines), store_dead_letters=True)

    replayed = RawRecord(value=lines[1], source="input.jsonl", offset=2, replay=True)
    counts = process_records(app, [replayed])

    assert counts.applied == 1
    assert app.get("c1").unapplied_credit() == 70
    decision = app.select_decisions([json.loads(lines[1])["message_id"]])
    assert [d.outcome for d in decision.values()] == ["applied"]
    # ...and after that, it is a duplicate like any applied message.
    assert process_records(app, records(*lines)).duplicate == 3


def test_a_message_id_used_by_another_customer_is_a_conflict(store_url: str) -> None:
    app = LedgerApplication(eventsourcing_env(store_url))
    process_records(app, records(customer_registered("c1"), customer_registered("c2")))
    first = charge("c1", "CH-1", "10.00", message_id="same-id")
    second = charge("c2", "CH-1", "10.00", message_id="same-id")

    counts = process_records(app, records(first, second, start=3))

    assert counts.applied == 1
    [letter] = counts.dead_letters
    assert letter.code == "conflict" and letter.message.startswith("message_id:")
    assert app.get("c2").unbilled == {}  # no second effect
    # Delivered again: refused again, no second dead letter, no effect.
    again = process_records(app, records(second, start=4))
    assert (again.refused_before, again.applied) == (1, 0)
    assert app.get("c2").unbilled == {}


def test_a_poison_message_is_dead_lettered_and_the_rest_of_the_batch_applied(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no validator foresaw (here OverflowError, as a date beyond the calendar
    raised) in one message of a batch: that message is dead-lettered with the exception as
    its reason, every other message applied, and it is not decided again when it returns."""
    app = LedgerApplication(eventsourcing_env(store_url))
    post_charge = CustomerAccount.post_charge

    def fragile(self: CustomerAccount, payload: dict[str, object], meta: object) -> bool:
        if payload["charge_id"] == "CH-POISON":
            raise OverflowError("date value out of range")
        return post_charge(self, payload, meta)  # type: ignore[arg-type]

    monkeypatch.setattr(CustomerAccount, "post_charge", fragile)
    lines = [
        customer_registered("c1"),
        charge("c1", "CH-1", "10.00"),
        charge("c1", "CH-POISON", "10.00"),
        charge("c1", "CH-2", "20.00"),
    ]
    counts = process_records(app, records(*lines), store_dead_letters=True)

    assert counts.applied == 3
    [letter] = counts.dead_letters
    assert letter.code == "unprocessable" and "OverflowError" in letter.message
    assert letter.offset == 3
    assert sorted(app.get("c1").unbilled) == ["CH-1", "CH-2"]
    again = process_records(app, records(*lines), store_dead_letters=True)
    assert (again.duplicate, again.refused_before, again.deadlettered) == (3, 1, 0)
    decisions = app.select_decisions(["chg-c1-CH-POISON"])
    assert decisions["chg-c1-CH-POISON"].outcome == REFUSED
