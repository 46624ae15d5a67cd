"""The real services behave as the ledger relies on: keyed Kafka delivery with manual offset
commits resumed by a consumer group, and exact NUMERIC round trips through psycopg."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.serializer import DefaultSerializer, JsonSerializer
from kafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.integration

Delivered = tuple[int, int, str, dict[str, Any]]  # partition, offset, key, value


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        key_deserializer=DefaultSerializer(),
        value_deserializer=JsonSerializer(),
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )


def _poll_until(consumer: KafkaConsumer, count: int, timeout_s: float = 30.0) -> list[Delivered]:
    got: list[Delivered] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            got.extend((tp.partition, r.offset, r.key, r.value) for r in records)
    return got


def _produce(bootstrap: str, topic: str, customers: list[str], per_customer: int) -> dict[str, int]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        key_serializer=DefaultSerializer(),
        value_serializer=JsonSerializer(),
        linger_ms=5,
    )
    partition_of: dict[str, int] = {}
    try:
        futures = [
            (
                customer,
                producer.send(
                    topic,
                    key=customer,
                    value={"customer_id": customer, "seq": seq, "amount": f"{seq}.10"},
                ),
            )
            for seq in range(per_customer)
            for customer in customers
        ]
        producer.flush(timeout=30)
        for customer, future in futures:
            partition = future.get(timeout=30).partition
            # The key decides the partition: one customer's messages stay in one ordered log.
            assert partition_of.setdefault(customer, partition) == partition
    finally:
        producer.close(timeout=10)
    return partition_of


def test_keyed_json_is_redelivered_from_the_last_committed_offset(
    kafka_bootstrap: str, kafka_topics: Callable[..., str]
) -> None:
    topic = kafka_topics("plumbing", partitions=4)
    group = f"{topic}.group"
    customers = [f"cust-{i}" for i in range(6)]
    per_customer = 5
    total = len(customers) * per_customer
    partition_of = _produce(kafka_bootstrap, topic, customers, per_customer)

    first = _consumer(kafka_bootstrap, topic, group)
    try:
        delivered = _poll_until(first, total)
        assert len(delivered) == total
        for customer in customers:
            seqs = [v["seq"] for _, _, k, v in delivered if k == customer]
            assert seqs == list(range(per_customer)), f"{customer} out of order: {seqs}"
            assert {p for p, _, k, _ in delivered if k == customer} == {partition_of[customer]}

        # Commit only the first half of every partition's records, as a batch loop would after
        # its database commit; the tail stays uncommitted (a crash before the next commit).
        by_partition: dict[int, list[int]] = {}
        for partition, offset, _, _ in delivered:
            by_partition.setdefault(partition, []).append(offset)
        committed: set[tuple[int, int]] = set()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for partition, partition_offsets in by_partition.items():
            keep = sorted(partition_offsets)[: len(partition_offsets) // 2]
            committed.update((partition, o) for o in keep)
            next_offset = keep[-1] + 1 if keep else min(partition_offsets)
            offsets[TopicPartition(topic, partition)] = OffsetAndMetadata(next_offset, "", -1)
        first.commit(offsets)
    finally:
        first.close(autocommit=False)

    uncommitted = {(p, o) for p, o, _, _ in delivered} - committed
    assert committed and uncommitted

    second = _consumer(kafka_bootstrap, topic, group)
    try:
        redelivered = _poll_until(second, len(uncommitted))
        # Nothing more is coming: a short extra poll must stay empty.
        redelivered.extend(_poll_until(second, len(uncommitted) + 1, timeout_s=1.0))
    finally:
        second.close(autocommit=False)

    assert {(p, o) for p, o, _, _ in redelivered} == uncommitted
    assert len(redelivered) == len(uncommitted)


def test_numeric_amounts_round_trip_exactly(pg_url: str) -> None:
    amounts = [
        Decimal("125.00"),
        Decimal("0.10"),
        Decimal("-19.99"),
        Decimal("12345678901234.5678"),
    ]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE plumbing_amounts (id serial PRIMARY KEY, amount NUMERIC(28, 4))")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO plumbing_amounts (amount) VALUES (%s)", [(a,) for a in amounts]
            )
            cur.execute("SELECT amount FROM plumbing_amounts ORDER BY id")
            back = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT sum(amount) FROM plumbing_amounts WHERE amount = 0.10")
            (tenth,) = cur.fetchone() or (None,)
            cur.execute("SELECT sum(amount) FROM (VALUES (0.1), (0.1), (0.1)) AS t(amount)")
            (three_tenths,) = cur.fetchone() or (None,)

    assert all(isinstance(b, Decimal) for b in back)
    assert back == amounts
    assert [str(b) for b in back] == ["125.0000", "0.1000", "-19.9900", "12345678901234.5678"]
    assert tenth == Decimal("0.10")
    assert three_tenths == Decimal("0.3")


def test_fresh_databases_are_empty_and_isolated(fresh_pg_url: Callable[[], str]) -> None:
    first, second = fresh_pg_url(), fresh_pg_url()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(second) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert row == (0,)
