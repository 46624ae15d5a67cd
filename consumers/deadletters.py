"""Dead letters on Kafka (`billing.deadletter`): list them, and replay them to the topic they
came from once the cause is fixed. Which dead letters were replayed is kept in the database,
so a second replay does not re-send them; one that fails again comes back as a new dead
letter."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from consumers.ingest import REPLAY_HEADER
from consumers.kafka_support import make_producer
from ledger.config import Settings
from ledger.store.db import Database

SCHEMA = """CREATE TABLE IF NOT EXISTS ledger_deadletters_replayed (
    topic TEXT NOT NULL, partition_no INTEGER NOT NULL, offset_no BIGINT NOT NULL,
    replayed_at TEXT NOT NULL, PRIMARY KEY (topic, partition_no, offset_no))"""


@dataclass(frozen=True)
class KafkaDeadLetter:
    partition: int
    offset: int
    record: dict[str, Any]

    def record_key(self) -> bytes:
        """Which source record this letter is about (the dead-letter topic's key)."""
        r = self.record
        return f"{r.get('source_topic')}:{r.get('partition')}:{r.get('offset')}".encode()

    def raw_bytes(self) -> bytes:
        raw = self.record.get("raw", "")
        if self.record.get("raw_encoding") == "base64":
            return base64.b64decode(raw)
        return str(raw).encode("utf-8")


def read_dead_letters(settings: Settings) -> list[KafkaDeadLetter]:
    """Every record on the dead-letter topic, from the beginning to the current end."""
    assert settings.kafka_bootstrap
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, group_id=None
    )
    try:
        partitions = consumer.partitions_for_topic(settings.topic_deadletter) or set()
        tps = [TopicPartition(settings.topic_deadletter, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: list[KafkaDeadLetter] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=1000).items():
                found.extend(
                    KafkaDeadLetter(tp.partition, r.offset, json.loads(r.value)) for r in records
                )
        # The topic is at-least-once: a crash after sending a batch's dead letters and
        # before committing its offsets sends them again. One letter per source record.
        unique: dict[bytes, KafkaDeadLetter] = {}
        for letter in sorted(found, key=lambda d: (d.partition, d.offset)):
            unique.setdefault(letter.record_key(), letter)
        return list(unique.values())
    finally:
        consumer.close()


def replay_dead_letters(settings: Settings, code: str | None = None) -> tuple[int, int]:
    """Re-send matching dead letters to their source topic with their key.

    Returns (replayed now, skipped as already replayed)."""
    assert settings.kafka_bootstrap
    db = Database(settings.database_url)
    db.create_schema(SCHEMA)
    topic = settings.topic_deadletter
    done = {
        (int(p), int(o))
        for p, o in db.execute(
            "SELECT partition_no, offset_no FROM ledger_deadletters_replayed WHERE topic = %s",
            (topic,),
        ).fetchall()
    }
    letters = [d for d in read_dead_letters(settings) if code in (None, d.record.get("code"))]
    todo = [d for d in letters if (d.partition, d.offset) not in done]
    producer = make_producer(settings.kafka_bootstrap, max_request_size=8 * 1024 * 1024)
    try:
        futures = [
            producer.send(
                d.record["source_topic"],
                key=(d.record.get("key") or "").encode("utf-8") or None,
                value=d.raw_bytes(),
                # Re-submitted on purpose: `ledger consume` decides it again.
                headers=[(REPLAY_HEADER, d.record_key())],
            )
            for d in todo
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)
    db.executemany(
        "INSERT INTO ledger_deadletters_replayed (topic, partition_no, offset_no, replayed_at)"
        " VALUES (%s, %s, %s, CURRENT_TIMESTAMP) ON CONFLICT DO NOTHING",
        [(topic, d.partition, d.offset) for d in todo],
    )
    db.commit()
    db.close()
    return len(todo), len(letters) - len(todo)
