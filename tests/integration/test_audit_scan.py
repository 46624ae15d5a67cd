"""The audit's parallel read (ledger/store/chainscan.py) on SQLite and PostgreSQL: split over
several processes by stream-id range it finds exactly what one reader of the notification
log finds — every event checked, every head, the hashes a checkpoint asks for — and names
each tampered stream and position whichever process reads it. A checkpoint read from the
streams' ends pins the same heads as one that walks every chain, and leaves to the walk what
the ends cannot vouch for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.checkpoints import CheckpointRefused, Walk, take_checkpoint, verify, walk
from ledger.domain.account import account_id
from ledger.store.chainscan import ScanTarget, StoreScanner, bounds, scan_range
from ledger.store.eventstore import eventsourcing_env
from tests.integration.test_audit_tamper import TOTAL_EVENTS, VICTIM, Ledger, built

pytestmark = pytest.mark.integration
__all__ = ["built"]  # the fixture, shared with the chain tamper suite
KEY = bytes(range(32))
NOW = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def app(built: Ledger) -> Iterator[tuple[LedgerApplication, StoreScanner, Ledger]]:
    url, _ = built
    ledger = LedgerApplication(eventsourcing_env(url))
    target = ScanTarget.of(url, ledger.recorder)
    assert target is not None
    try:
        yield ledger, StoreScanner(target, workers=3), built
    finally:
        ledger.close()


def same(a: Walk, b: Walk) -> None:
    assert (a.checked, a.heads, a.hash_at, a.broken, a.global_position) == (
        b.checked, b.heads, b.hash_at, b.broken, b.global_position)  # fmt: skip


def test_processes_find_what_one_reader_of_the_log_finds(app: tuple) -> None:
    ledger, scanner, _ = app
    wanted = {(str(account_id(VICTIM)), 4), (str(account_id("contoso")), 5)}
    parallel = walk(ledger, wanted, scanner)
    same(parallel, walk(ledger, wanted))
    assert parallel.checked == TOTAL_EVENTS and not parallel.broken
    assert {h.name for h in parallel.heads.values()} == {VICTIM, "contoso"}
    assert {key for key in parallel.hash_at} == wanted


def test_the_ranges_cover_every_stream_once(app: tuple) -> None:
    _, scanner, _ = app
    parts = [scan_range(scanner.target, low, high, 10**9, {}) for low, high in bounds(5)]
    assert sum(p.checked for p in parts) == TOTAL_EVENTS
    assert sorted(h[1] for p in parts for h in p.heads) == ["contoso", VICTIM]


def test_tampered_streams_are_named_whichever_process_reads_them(app: tuple) -> None:
    ledger, scanner, (_, table) = app
    victim = table.states(VICTIM)[2]
    table.set_state(VICTIM, 2, victim.replace(b'"amount":"100.00"', b'"amount":"10.00"'))
    table.delete("contoso", 3)

    parallel = walk(ledger, None, scanner)
    same(parallel, walk(ledger))
    found = [(b.customer_id, b.position, b.reason) for b in parallel.broken]
    assert found == [("contoso", 3, "event missing (next found: 4)"),
                     (VICTIM, 2, "content does not match its hash")]  # fmt: skip
    # Past a break the stream is still read to its end: its head is known.
    assert {h.name: h.version for h in parallel.heads.values()} == {"contoso": 5, VICTIM: 6}


class Kept:
    """A checkpoint keeper that remembers (the `audit_checkpoints` table's job)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, checkpoint: dict[str, object], line: str) -> None:
        self.lines.append(line)


def test_a_checkpoint_from_the_streams_ends_equals_one_from_every_chain(app: tuple) -> None:
    ledger, scanner, _ = app
    fast, _ = take_checkpoint(ledger, Kept(), KEY, now=NOW, scanner=scanner)
    walked, _ = take_checkpoint(ledger, Kept(), KEY, now=NOW)
    assert fast["streams"] == walked["streams"] and fast["merkle_root"] == walked["merkle_root"]
    assert fast["global_position"] == walked["global_position"] == TOTAL_EVENTS


def test_a_changed_newest_event_refuses_the_checkpoint_naming_it(app: tuple) -> None:
    ledger, scanner, (_, table) = app
    newest = json.loads(table.states(VICTIM)[6])
    newest["data"]["note"] = "changed"
    table.set_state(VICTIM, 6, json.dumps(newest).encode())
    with pytest.raises(CheckpointRefused, match=f"customer {VICTIM} position 6"):
        take_checkpoint(ledger, Kept(), KEY, now=NOW, scanner=scanner)


def test_a_deleted_event_before_the_newest_refuses_the_checkpoint(app: tuple) -> None:
    ledger, scanner, (_, table) = app
    table.delete(VICTIM, 5)
    with pytest.raises(CheckpointRefused, match=f"customer {VICTIM} position 5: event missing"):
        take_checkpoint(ledger, Kept(), KEY, now=NOW, scanner=scanner)


def test_an_edit_further_back_is_pinned_by_the_checkpoint_and_named_by_verify(
    app: tuple,
) -> None:
    ledger, scanner, (_, table) = app
    victim = table.states(VICTIM)[2]
    table.set_state(VICTIM, 2, victim.replace(b'"amount":"100.00"', b'"amount":"10.00"'))
    _, line = take_checkpoint(ledger, Kept(), KEY, now=NOW, scanner=scanner)

    found = verify(ledger, KEY, [("file", line)], scanner)
    assert not found.ok and not found.findings  # the checkpoint itself matches the store
    assert [(b.customer_id, b.position) for b in found.walk.broken] == [(VICTIM, 2)]
