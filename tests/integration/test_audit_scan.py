"""The audit's parallel read (ledger/store/chainscan.py) on SQLite and PostgreSQL: split over
several processes by stream-id range it finds exactly what one reader of the notification
log finds — every event checked, every head, the hashes a checkpoint asks for — and names
each tampered stream and position whichever process reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.checkpoints import Walk, walk
from ledger.domain.account import account_id
from ledger.store.chainscan import ScanTarget, StoreScanner, bounds, scan_range
from ledger.store.eventstore import eventsourcing_env
from tests.integration.test_audit_tamper import TOTAL_EVENTS, VICTIM, Ledger, built

pytestmark = pytest.mark.integration
__all__ = ["built"]  # the fixture, shared with the chain tamper suite


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
