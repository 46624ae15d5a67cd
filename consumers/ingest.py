"""`ledger consume`: ingest topics → events on customer streams, effectively once.

Per batch: poll → apply in one database transaction (ledger.ingest) → send dead letters and
wait for their acks → commit the Kafka offsets. A crash anywhere replays the batch; the
aggregate's message-id and business-id idempotency makes the replay a no-op. A database
outage is waited out with backoff; it never dead-letters a good message.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.kafka_support import (
    TRANSIENT_DB_ERRORS,
    StopFlag,
    ensure_topics,
    make_consumer,
    make_producer,
    to_json_bytes,
)
from ledger.application import LedgerApplication
from ledger.config import Settings
from ledger.deadletters import DeadLetter
from ledger.ingest import IngestCounts, RawRecord, process_records
from ledger.metrics import count_ingest

log = structlog.get_logger(__name__)


@dataclass
class ConsumeTotals:
    batches: int = 0
    applied: int = 0
    duplicate: int = 0
    deadlettered: int = 0


def dead_letter_record(letter: DeadLetter) -> dict[str, object]:
    return {
        "code": letter.code,
        "message": letter.message,
        "source_topic": letter.source,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "raw": letter.raw,
        "raw_encoding": letter.raw_encoding,
    }


def send_dead_letters(producer: KafkaProducer, topic: str, letters: list[DeadLetter]) -> None:
    """Publish and wait for the broker's acks, so offsets are never committed past a loss."""
    futures = []
    for letter in letters:
        # The key names the source record, so a replayed batch's repeats are recognisable.
        key = f"{letter.source}:{letter.partition}:{letter.offset}".encode()
        futures.append(
            producer.send(topic, key=key, value=to_json_bytes(dead_letter_record(letter)))
        )
    producer.flush()
    for future in futures:
        future.get(timeout=30)


class IngestConsumer:
    def __init__(
        self,
        app: LedgerApplication,
        settings: Settings,
        stop: StopFlag,
        *,
        max_batch: int = 1000,
    ) -> None:
        assert settings.kafka_bootstrap, "LEDGER_KAFKA_BOOTSTRAP is required for `ledger consume`"
        self.app = app
        self.settings = settings
        self.stop = stop
        self.max_batch = max_batch
        self.totals = ConsumeTotals()
        bootstrap = settings.kafka_bootstrap
        ensure_topics(bootstrap, [*settings.ingest_topics, settings.topic_deadletter])
        self.consumer: KafkaConsumer = make_consumer(
            bootstrap, settings.consumer_group_ingest, max_poll_records=max_batch
        )
        self.consumer.subscribe(settings.ingest_topics)
        self.producer: KafkaProducer = make_producer(bootstrap)

    def run(self) -> ConsumeTotals:
        log.info("consume.started", topics=self.settings.ingest_topics)
        try:
            while not self.stop.is_set:
                polled = self.consumer.poll(timeout_ms=500, max_records=self.max_batch)
                if polled:
                    self._handle(polled)
        finally:
            self.consumer.close(autocommit=False)
            self.producer.close(timeout=10)
            log.info("consume.stopped", **vars(self.totals))
        return self.totals

    def _handle(self, polled: dict[TopicPartition, list[object]]) -> None:
        records = [
            RawRecord(
                value=r.value if r.value is not None else b"",  # type: ignore[attr-defined]
                source=tp.topic,
                partition=tp.partition,
                offset=r.offset,  # type: ignore[attr-defined]
                key=r.key,  # type: ignore[attr-defined]
            )
            for tp, batch in polled.items()
            for r in batch
        ]
        counts = self._apply_with_retry(records)
        if counts is None:
            return  # stopping while the database was down: nothing committed, replayed later
        if counts.dead_letters:
            send_dead_letters(self.producer, self.settings.topic_deadletter, counts.dead_letters)
        offsets = {
            tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)  # type: ignore[attr-defined]
            for tp, batch in polled.items()
        }
        try:
            self.consumer.commit(offsets)
        except CommitFailedError:
            # A rebalance took the partitions away: the new owner replays, idempotently.
            log.warning("consume.commit_failed_rebalance")
        count_ingest(counts.applied, counts.duplicate, counts.deadlettered)
        self.totals.batches += 1
        self.totals.applied += counts.applied
        self.totals.duplicate += counts.duplicate
        self.totals.deadlettered += counts.deadlettered
        log.info(
            "consume.batch",
            records=len(records),
            applied=counts.applied,
            duplicate=counts.duplicate,
            deadlettered=counts.deadlettered,
            offsets={f"{tp.topic}/{tp.partition}": o.offset for tp, o in offsets.items()},
        )

    def _apply_with_retry(self, records: list[RawRecord]) -> IngestCounts | None:
        delay = 0.5
        while True:
            try:
                return process_records(self.app, records)
            except TRANSIENT_DB_ERRORS as error:
                log.warning("consume.database_unavailable", error=str(error), retry_in=delay)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 10.0)
