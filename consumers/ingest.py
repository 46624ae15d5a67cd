"""`ledger consume`: ingest topics → events on customer streams, effectively once.

Per batch: poll → apply in one database transaction (ledger.app.ingest) → send dead letters and
wait for their acks → commit the Kafka offsets. A crash anywhere replays the batch; the
store-wide record of decided messages (ledger.store.decisions) makes the replay a no-op: an
applied message is a duplicate, a refused one is refused again without a new decision. A database
outage is waited out with backoff; it never dead-letters a good message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.kafka_support import (
    TRANSIENT_DB_ERRORS,
    StopFlag,
    ensure_topics,
    make_consumer,
    make_producer,
    to_json_bytes,
)
from ledger.app.application import LedgerApplication
from ledger.app.deadletters import DeadLetter
from ledger.app.ingest import IngestCounts, RawRecord, process_records
from ledger.config import Settings
from ledger.metrics import count_ingest

log = structlog.get_logger(__name__)


@dataclass
class ConsumeTotals:
    batches: int = 0
    applied: int = 0
    duplicate: int = 0
    deadlettered: int = 0


# The dead-letter topic, when `ledger consume` creates it, and the producer accept records this
# large: an oversized source record (base64 included) is kept whole. A letter larger still, or
# refused by a dead-letter topic made with a smaller limit, goes out with its raw value cut to
# a prefix (`raw_truncated`, with the full `raw_size` and `raw_sha256`): never a poison pill.
DEADLETTER_MAX_BYTES = 8 * 1024 * 1024
TRUNCATED_RAW_CHARS = 64 * 1024  # a multiple of 4: a base64 prefix still decodes
SAFE_LETTER_BYTES = 900_000  # fits the broker's default max.message.bytes (1 MB)


def dead_letter_record(letter: DeadLetter, *, truncate: bool = False) -> dict[str, object]:
    record: dict[str, object] = {
        "code": letter.code,
        "message": letter.message,
        "source_topic": letter.source,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "raw": letter.raw,
        "raw_encoding": letter.raw_encoding,
    }
    if truncate:
        raw = letter.raw_bytes()
        record.update(
            raw=letter.raw[:TRUNCATED_RAW_CHARS],
            raw_truncated=True,
            raw_size=len(raw),
            raw_sha256=hashlib.sha256(raw).hexdigest(),
        )
    return record


def _letter_key(letter: DeadLetter) -> bytes:
    # The key names the source record, so a replayed batch's repeats are recognisable.
    return f"{letter.source}:{letter.partition}:{letter.offset}".encode()


def send_dead_letters(
    producer: KafkaProducer,
    topic: str,
    letters: list[DeadLetter],
    new_producer: Callable[[], KafkaProducer],
) -> KafkaProducer:
    """Publish and wait for the broker's acks, so offsets are never committed past a loss.

    Returns the producer to use from now on: a broker that refuses a record as too large
    leaves kafka-python's idempotent producer failing every later send to that partition, so
    it is replaced by `new_producer()` before the refused letters are sent again, cut down.
    """
    sent: list[tuple[DeadLetter, Any]] = []
    retry: list[DeadLetter] = []
    for letter in letters:
        value = to_json_bytes(dead_letter_record(letter))
        try:
            sent.append((letter, producer.send(topic, key=_letter_key(letter), value=value)))
        except MessageSizeTooLargeError:  # larger than the producer's max_request_size
            retry.append(letter)
    producer.flush()
    refused = False
    for letter, future in sent:
        try:
            future.get(timeout=30)
        except MessageSizeTooLargeError:  # larger than the topic's max.message.bytes
            retry.append(letter)  # (or in the same request as such a record)
            refused = True
    if refused:
        producer.close(timeout=10)
        producer = new_producer()
    futures = []
    for letter in retry:
        value = to_json_bytes(dead_letter_record(letter))
        if len(value) > SAFE_LETTER_BYTES:
            log.warning("consume.deadletter_truncated", size=len(value), source=letter.source,
                        partition=letter.partition, offset=letter.offset)  # fmt: skip
            value = to_json_bytes(dead_letter_record(letter, truncate=True))
        futures.append(producer.send(topic, key=_letter_key(letter), value=value))
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    return producer


# Header `ledger deadletters replay` puts on a re-sent dead letter: decide it again on purpose
# (any other delivery of a message refused before gets the same refusal, not a new decision).
REPLAY_HEADER = "ledger-replay"


def _is_replay(record: object) -> bool:
    headers = getattr(record, "headers", None) or []
    return any(name == REPLAY_HEADER for name, _ in headers)


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
        ensure_topics(bootstrap, settings.ingest_topics)
        # An existing dead-letter topic keeps its owner's limit: a letter past it is cut down
        # to a prefix with the size and sha256 of the whole (`dead_letter_record(truncate=True)`),
        # never lost.
        ensure_topics(bootstrap, [settings.topic_deadletter],
                      max_message_bytes=DEADLETTER_MAX_BYTES, raise_existing=False)  # fmt: skip
        self.consumer: KafkaConsumer = make_consumer(
            bootstrap, settings.consumer_group_ingest, max_poll_records=max_batch
        )
        self.consumer.subscribe(settings.ingest_topics)
        self.producer: KafkaProducer = self._new_producer()

    def _new_producer(self) -> KafkaProducer:
        assert self.settings.kafka_bootstrap
        return make_producer(self.settings.kafka_bootstrap, max_request_size=DEADLETTER_MAX_BYTES)

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
                replay=_is_replay(r),
            )
            for tp, batch in polled.items()
            for r in batch
        ]
        counts = self._apply_with_retry(records)
        if counts is None:
            return  # stopping while the database was down: nothing committed, replayed later
        if counts.dead_letters:
            self.producer = send_dead_letters(
                self.producer, self.settings.topic_deadletter, counts.dead_letters,
                new_producer=self._new_producer,
            )  # fmt: skip
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
                # A record refused before at the same offset comes back after a crash that
                # may have come before its dead letter was sent: send it again (same key).
                return process_records(self.app, records, resend_refused=True)
            except TRANSIENT_DB_ERRORS as error:
                log.warning("consume.database_unavailable", error=str(error), retry_in=delay)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, 10.0)
