"""`ledger project`: Kafka `ledger.events` → the read models in the database.

Per batch, ONE database transaction holds the row changes of every projection, the
per-customer positions that make re-published events harmless, and the consumed offsets.
On partition assignment the consumer seeks to the offsets stored there, so the database,
not Kafka's committed offsets, says where to resume.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import structlog
from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.kafka_support import TRANSIENT_DB_ERRORS, StopFlag, ensure_topics, make_consumer
from ledger.app.views import PROJECTIONS
from ledger.config import Settings
from ledger.metrics import PROJECTION_POSITION
from ledger.store.db import Database
from projections.store import RowStore, apply_projections

log = structlog.get_logger(__name__)


def _loads(value: bytes) -> Any:
    """orjson where it can (faster on bytes), json for what it refuses (NaN, lone surrogate
    escapes, ints beyond 64 bits), so the result is json.loads's."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


class SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("project.partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        stored = self.projector.stored_offsets()
        for tp in assigned:
            if tp.partition in stored:
                self.projector.consumer.seek(tp, stored[tp.partition])
            else:
                self.projector.consumer.seek_to_beginning(tp)
        log.info(
            "project.partitions_assigned",
            partitions={tp.partition: stored.get(tp.partition, 0) for tp in assigned},
        )


class Projector:
    def __init__(self, settings: Settings, stop: StopFlag, *, max_batch: int = 2000) -> None:
        assert settings.kafka_bootstrap, "LEDGER_KAFKA_BOOTSTRAP is required for `ledger project`"
        self.settings = settings
        self.stop = stop
        self.max_batch = max_batch
        self.topic = settings.topic_events
        self.group = settings.consumer_group_project
        self.db = Database(settings.database_url)
        self.store = RowStore(self.db)
        self.applied = 0
        ensure_topics(settings.kafka_bootstrap, [self.topic])
        self.consumer: KafkaConsumer = make_consumer(
            settings.kafka_bootstrap, self.group, max_poll_records=max_batch
        )
        self.consumer.subscribe([self.topic], listener=SeekToStoredOffsets(self))

    def stored_offsets(self) -> dict[int, int]:
        offsets = self.store.offsets(self.group, self.topic)
        self.db.commit()
        return offsets

    def run(self) -> int:
        log.info("project.started", topic=self.topic, group=self.group)
        try:
            while not self.stop.is_set:
                polled = self.consumer.poll(timeout_ms=500, max_records=self.max_batch)
                if polled:
                    self._handle(polled)
        finally:
            self.consumer.close(autocommit=False)
            log.info("project.stopped", applied=self.applied)
        return self.applied

    def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        events = [_loads(r.value) for batch in polled.values() for r in batch]
        offsets = {tp.partition: batch[-1].offset + 1 for tp, batch in polled.items()}
        delay = 0.5
        while True:
            try:
                applied = self._write(events, offsets)
                break
            except TRANSIENT_DB_ERRORS as error:
                log.warning("project.database_unavailable", error=str(error), retry_in=delay)
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                self._reconnect()
        try:
            self.consumer.commit(
                {
                    TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                    for p, o in offsets.items()
                }
            )
        except Exception as error:  # informational only: the database holds the truth
            log.info("project.kafka_commit_skipped", error=str(error))
        self.applied += applied
        log.info("project.batch", events=len(events), applied=applied, offsets=offsets)

    def _write(self, events: list[dict[str, Any]], offsets: dict[int, int]) -> int:
        try:
            applied = apply_projections(self.store, list(PROJECTIONS.values()), events)
            self.store.set_offsets(self.group, self.topic, offsets)
            self.db.commit()
        except BaseException:
            self._rollback_quietly()
            raise
        top = max(e["global_position"] for e in events)
        for name in PROJECTIONS:
            PROJECTION_POSITION.labels(name).set(top)
        return applied

    def _rollback_quietly(self) -> None:
        try:
            self.db.rollback()
        except Exception:  # the connection may be gone; a reconnect follows
            log.debug("project.rollback_failed")

    def _reconnect(self) -> None:
        try:
            self.db.close()
        except Exception:
            log.debug("project.close_failed")
        try:
            self.db = Database(self.settings.database_url)
            self.store = RowStore(self.db)
        except TRANSIENT_DB_ERRORS as error:
            log.warning("project.reconnect_failed", error=str(error))
