"""`ledger deadletters replay` with Kafka: once the cause is fixed (the customer registered
later), dead letters go back to their source topic and `ledger consume` applies them; a
second replay sends nothing again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import helpers as h
from tests.e2e.procs import (
    EventStore,
    GroupProbe,
    Processes,
    dead_letters,
    ledger_env,
    make_ingest_topics,
    make_producer,
    produce,
    run_ledger,
    wait_until,
)

pytestmark = pytest.mark.e2e


def test_replayed_dead_letters_apply_once_the_customer_exists(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
) -> None:
    topics = make_ingest_topics(kafka_topics)
    database_url = fresh_pg_url()
    env = ledger_env(database_url, bootstrap=kafka_bootstrap, topics=topics)
    procs = Processes(tmp_path / "logs", env)
    producer = make_producer(kafka_bootstrap)
    probe = GroupProbe(kafka_bootstrap, topics.group, topics.ingest)
    store = EventStore(database_url)
    early = [h.payment("late-co", payment_id=f"p{n}", amount="10.00") for n in range(3)]
    try:
        consumer = procs.start("consume")
        produce(producer, [(topics.payments, "late-co", m.encode()) for m in early])
        wait_until(
            lambda: len(dead_letters(kafka_bootstrap, topics.deadletter)) == 3,
            timeout=60, what="three dead letters", procs=procs, alive=[consumer],
        )  # fmt: skip
        listed = json.loads(
            run_ledger("deadletters", "list", "--json", "--code", "unknown_customer",
                       env=env, cwd=tmp_path).stdout
        )  # fmt: skip
        assert [d["code"] for d in listed] == ["unknown_customer"] * 3

        registration = h.customer_registered("late-co").encode()
        produce(producer, [(topics.customers, "late-co", registration)])
        wait_until(lambda: store.registered() == 1, timeout=60, what="registration",
                   procs=procs, alive=[consumer])  # fmt: skip

        first = run_ledger("deadletters", "replay", "--code", "unknown_customer",
                           env=env, cwd=tmp_path)  # fmt: skip
        assert b"re-sent 3" in first.stdout
        wait_until(
            lambda: sum(e["event_type"] == "PaymentReceived" for e in store.events()) == 3,
            timeout=60, what="replayed payments applied", procs=procs, alive=[consumer],
        )  # fmt: skip
        second = run_ledger("deadletters", "replay", env=env, cwd=tmp_path)
        assert b"re-sent 0" in second.stdout and b"3 replayed before" in second.stdout
        wait_until(lambda: probe.lag() == 0, timeout=60, what="all consumed", procs=procs,
                   alive=[consumer])  # fmt: skip
        paid = [e for e in store.events() if e["event_type"] == "PaymentReceived"]
        assert sorted(e["data"]["payment_id"] for e in paid) == ["p0", "p1", "p2"]
        assert len(dead_letters(kafka_bootstrap, topics.deadletter)) == 3  # nothing new
    finally:
        procs.kill_all()
        producer.close()
        probe.close()
        store.close()
