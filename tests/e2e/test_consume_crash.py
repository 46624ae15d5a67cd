"""Issue 4: `ledger consume` has exactly-once effect however it dies.

A producer thread sends a realistic mix (charges, payments, reversals, credit notes, support,
re-sends) while consumers are SIGKILLed at random moments (seeded) and restarted, or stopped
with SIGTERM. At the end every fact has exactly one event, nothing is dead-lettered, and the
views equal those of `ledger ingest` of the same messages into a fresh SQLite store.

No invoice run happens, so nothing settles against anything: the final balances do not depend
on how Kafka interleaves the topics, only on per-customer order within a topic, which keys
keep (see TOPIC_OF_TYPE in procs.py).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.structs import TopicPartition

from tests.e2e.procs import (
    CONSUME,
    Delivered,
    Run,
    assert_exactly_once,
    dead_letters,
    mixed_workload,
    reference_of,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def run(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
) -> Iterator[Run]:
    pipeline = Run(tmp_path, kafka_bootstrap, kafka_topics, fresh_pg_url)
    try:
        yield pipeline
    finally:
        pipeline.close()


def test_sigkill_at_random_moments_has_exactly_once_effect(run: Run, tmp_path: Path) -> None:
    rng = random.Random(4_2024)
    workload = mixed_workload(seed=4_4, customers=300, total=20_000)
    reference = reference_of(workload, tmp_path)
    consumer = run.procs.start(*CONSUME)
    run.register(workload, alive=[consumer])
    run.send_in_background(workload, chunk=500, pause=0.4)

    kills = []
    for _ in range(3):
        batches = rng.randint(1, 4)  # kill after this many batches, plus up to 0.6 s
        before = len(consumer.logged("consume.batch"))  # (the registrations: first one only)
        wait_until(
            lambda c=consumer, n=before + batches: len(c.logged("consume.batch")) >= n,
            timeout=90, what=f"{batches} batches by {consumer.name}", procs=run.procs,
            alive=[consumer],
        )  # fmt: skip
        time.sleep(rng.uniform(0.0, 0.6))
        work_left = run.probe.lag() > 0 or (run.sender is not None and run.sender.is_alive())
        consumer.kill()
        kills.append((consumer.name, batches, work_left))
        consumer = run.procs.start(*CONSUME)

    run.wait_sent()
    assert all(left for _, _, left in kills), f"a kill found no work left: {kills}"
    run.wait_drained(alive=[consumer])
    run.stop([consumer])
    assert len(run.sent) == 20_000
    run.assert_exactly_once_and_views(workload, reference)


def test_two_consumers_one_killed_and_restarted(run: Run, tmp_path: Path) -> None:
    rng = random.Random(2)
    workload = mixed_workload(seed=22, customers=100, total=5_000, prefix="d")
    reference = reference_of(workload, tmp_path)
    first = run.procs.start(*CONSUME, name="consume-a")
    second = run.procs.start(*CONSUME, name="consume-b")
    run.register(workload, alive=[first, second])
    run.send_in_background(workload, chunk=100, pause=0.3)

    wait_until(
        lambda: second.logged("consume.batch") and first.logged("consume.batch"),
        timeout=90, what="both consumers processing", procs=run.procs, alive=[first, second],
    )  # fmt: skip
    time.sleep(rng.uniform(0.0, 1.0))
    second.kill()
    second = run.procs.start(*CONSUME, name="consume-b")

    run.wait_sent()
    run.wait_drained(alive=[first, second])
    assert second.logged("consume.batch"), "the restarted consumer never got partitions"
    run.stop([first, second])
    run.assert_exactly_once_and_views(workload, reference)


def test_sigterm_commits_what_it_applied_and_exits_0(run: Run, tmp_path: Path) -> None:
    workload = mixed_workload(seed=5, customers=100, total=5_000, prefix="g")
    consumer = run.procs.start(*CONSUME)
    run.register(workload, alive=[consumer])
    run.send_in_background(workload, chunk=250, pause=0.3)
    wait_until(
        lambda: len(consumer.logged("consume.batch")) >= 3,
        timeout=60, what="3 batches", procs=run.procs, alive=[consumer],
    )  # fmt: skip
    consumer.terminate()
    assert consumer.wait(30) == 0, consumer.tail()
    assert consumer.logged("consume.stopped"), consumer.tail()
    run.wait_sent()

    # What the store holds is exactly what lies below the committed offsets: a message at
    # or above its partition's committed offset has no effect yet, one below has.
    committed = run.probe.committed()
    applying = {item.message_id for item in workload.items if item.applies}
    first_seen: dict[str, Delivered] = {}
    for record in run.sent:
        assert record.value is not None
        if _message_id(record.value) in applying:
            first_seen.setdefault(_message_id(record.value), record)
    below = [
        r.value for r in first_seen.values()
        if r.offset < committed[_tp(r)] and r.value is not None
    ]  # fmt: skip
    assert len(below) < len(first_seen), "SIGTERM came after everything was consumed"
    assert_exactly_once(run.store.events(), below)

    # A restart applies the rest, once.
    consumer = run.procs.start(*CONSUME)
    run.wait_drained(alive=[consumer])
    run.stop([consumer])
    assert_exactly_once(run.store.events(), workload.applying())
    assert dead_letters(run.bootstrap, run.topics.deadletter) == []


def _message_id(value: bytes) -> str:
    return str(json.loads(value)["message_id"])


def _tp(record: Delivered) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)
