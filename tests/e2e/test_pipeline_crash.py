"""Issue 5, crashes: `ledger publish` and `ledger project` are killed with SIGKILL several times
at random moments (fixed seed) during a 20,000-message run and restarted. At the end the
stored rows equal a rebuild from the event store (every row of every projection), each
projection's position is the log head, and no event was counted twice: every customer's
`paid` is the sum of the payments sent minus the reversed ones.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.procs import EventStore, read_topic
from tests.e2e.test_pipeline import (
    COLLECTIONS_AS_OF,
    MONTHS,
    PROJECTION_NAMES,
    Pipeline,
    balances_by_customer,
    phased_workload,
    pipeline,  # noqa: F401  (the fixture)
)

pytestmark = pytest.mark.e2e

SEED = 20261125
# Who is killed in each phase (January, February, March, April payments); the order within a
# phase and the moments are drawn from the seed. Every project kill costs a consumer-group
# session timeout (10 s) before the partitions are assigned again.
KILLS = (["publish", "project", "publish"], ["project", "publish"], ["publish", "project"],
         ["publish"])  # fmt: skip
RESTART_ARGS = {"publish": ("--batch-size", "500"), "project": ("--max-batch", "500")}


class Chaos:
    """Kills `publish` / `project` with SIGKILL at seeded random moments while it has work
    in hand, and starts it again."""

    def __init__(self, line: Pipeline, seed: int) -> None:
        self.line = line
        self.rng = random.Random(seed)
        self.store = EventStore(line.database_url)
        self.current = {name: line.start(name, *RESTART_ARGS[name]) for name in RESTART_ARGS}
        self.killed: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def close(self) -> None:
        self.store.close()

    def pending(self, victim: str) -> int:
        """Events the victim has yet to handle (published / projected)."""
        if victim == "publish":
            return self.store.head() - self.line.publish_position()
        ends = self.line.events.end_offsets(self.line.event_partitions)
        stored = self.line.projected_offsets()
        return sum(end - stored.get(tp.partition, 0) for tp, end in ends.items())

    def working(self, victim: str) -> bool:
        proc = self.current[victim]
        started = "publish.batch" if victim == "publish" else "project.partitions_assigned"
        return bool(proc.logged(started)) and self.pending(victim) > 0

    def strike(self, victim: str) -> None:
        """Kill the victim with SIGKILL while it has work in hand, and start it again."""
        if victim == "publish":
            self._strike_publisher()
            return
        deadline = time.monotonic() + 15
        while not self.working(victim) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(self.rng.uniform(0.0, 1.5))
        self._kill_and_restart(victim)

    def _strike_publisher(self) -> None:
        """The publisher keeps up in milliseconds, so catch it mid-backlog: stop it, let the
        consumer store a backlog, restart it, and kill it right after its first batch."""
        self.current["publish"].kill()
        deadline = time.monotonic() + 20
        while self.pending("publish") < 1500 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc = self.line.start("publish", *RESTART_ARGS["publish"])
        self.current["publish"] = proc
        while not proc.logged("publish.batch") and time.monotonic() < deadline + 20:
            time.sleep(0.01)
        time.sleep(self.rng.uniform(0.0, 0.05))
        self._kill_and_restart("publish")

    def _kill_and_restart(self, victim: str) -> None:
        proc = self.current[victim]
        assert proc.running, proc.tail()
        pending = self.pending(victim)
        proc.kill()
        self.killed.append({"victim": victim, "at": round(time.monotonic() - self.t0, 1),
                            "pending": pending})  # fmt: skip
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.current[victim] = self.line.start(victim, *RESTART_ARGS[victim])

    def phase(self, victims: list[str]) -> None:
        for victim in self.rng.sample(victims, len(victims)):
            self.strike(victim)


def test_killed_publisher_and_projector_count_every_event_once(
    pipeline: Pipeline,  # noqa: F811
) -> None:
    work = phased_workload(seed=SEED, customers=400, per_phase=6_490, prefix="crash")
    assert work.total >= 20_000
    consume = pipeline.start("consume")
    chaos = Chaos(pipeline, SEED)
    try:
        pipeline.send(work.registrations)
        pipeline.wait_ingested()
        for month, messages, victims in zip(MONTHS, work.phases, KILLS, strict=False):
            pipeline.send(messages)
            chaos.phase(victims)
            pipeline.wait_ingested(timeout=180)
            pipeline.ledger("invoice", "run", "--period", month)
        pipeline.ledger("collections", "run", "--as-of", COLLECTIONS_AS_OF)
        pipeline.send(work.phases[-1])
        chaos.phase(KILLS[-1])
    finally:
        chaos.close()
    assert consume.running, consume.tail()
    head = pipeline.wait_caught_up(timeout=180)
    print(f"kills: {chaos.killed}")
    for victim in RESTART_ARGS:
        assert any(k["pending"] for k in chaos.killed if k["victim"] == victim), (
            f"{victim} was never killed with work in hand: {chaos.killed}"
        )

    # The crashes happened mid-work: batches were re-sent to ledger.events (or not, by luck),
    # but every stored event is there at least once.
    published = [
        json.loads(r.value) for r in read_topic(pipeline.bootstrap, pipeline.topics.events)
    ]
    copies = Counter(e["global_position"] for e in published)
    # PostgreSQL may skip a notification id (a rolled-back insert), so compare with the store.
    store = EventStore(pipeline.database_url)
    stored_positions = {e["global_position"] for e in store.events()}
    store.close()
    assert set(copies) == stored_positions and max(stored_positions) == head
    print(f"head {head}, published {len(published)}, re-sent {len(published) - head}")

    # Every projection is at the log head, no event was counted twice.
    status = pipeline.status()
    assert {s["projection"]: (s["position"], s["lag"]) for s in status} == {
        name: (head, 0) for name in PROJECTION_NAMES
    }
    balances = balances_by_customer(pipeline.show("balances"))
    assert {c: Decimal(b["paid"]) for c, b in balances.items()} == work.paid
    rows = pipeline.stored_rows()
    for customer, paid in work.paid.items():
        assert Decimal(rows[("accounts", customer)]["paid"]) == paid, customer
    trial = pipeline.show("trial-balance")
    for currency in ("USD", "EUR"):
        lines = [r for r in trial if r["currency"] == currency]
        assert sum(Decimal(r["debit"]) for r in lines) == sum(Decimal(r["credit"]) for r in lines)

    # The stored rows are exactly what a rebuild from the event store gives.
    pipeline.assert_rebuild_reproduces_rows()
