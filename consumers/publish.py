"""`ledger publish`: the event store's notification log → Kafka `ledger.events`, in global
order, key = customer_id.

Per batch: read notifications after the last one sent → send → wait for every ack of the
PREVIOUS batch → store its last position. So reading and encoding a batch overlaps the
broker's acks of the one before (one batch in flight; the idempotent producer keeps each
partition in order), and the stored position never passes an event the broker has not
taken. A crash after sending and before storing re-sends from the stored position:
harmless, because projections skip events at or below a customer's last applied global
position.
One publisher works at a time (a PostgreSQL advisory lock); others wait as hot standbys.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg
import structlog
from kafka import KafkaProducer
from kafka.partitioner.default import DefaultPartitioner, murmur2
from psycopg.sql import SQL, Identifier

from consumers.kafka_support import (
    LARGE_RECORD_BYTES,
    TRANSIENT_DB_ERRORS,
    RecordAppender,
    StopFlag,
    ensure_topics,
    make_producer,
    to_json_bytes,
)
from ledger.app.application import LedgerApplication
from ledger.config import Settings
from ledger.metrics import EVENTS_PUBLISHED, LOG_HEAD, PUBLISH_POSITION
from ledger.store.db import Database
from ledger.store.positions import PositionStore
from ledger.store.wire import Decoder

log = structlog.get_logger(__name__)

POSITION_NAME = "publish:{topic}"
ADVISORY_LOCK_ID = 0x1ED6E5  # any constant shared by all publishers


class NewEvents:
    """Waits for new events in the store. The recorder NOTIFYs a channel in every insert
    transaction, so the publisher LISTENs and wakes when a writer commits: events go out
    without a polling delay, and an idle publisher sends no queries. Without PostgreSQL, or
    while its connection is down, it polls every POLL seconds."""

    POLL = 0.1

    def __init__(self, database_url: str | None, channel: str | None, stop: StopFlag) -> None:
        self.url = database_url if channel else None
        self.channel = channel
        self.stop = stop
        self.conn: psycopg.Connection[Any] | None = None

    def wait(self, timeout: float) -> None:
        if self.url is None:
            self.stop.wait(min(timeout, self.POLL))
            return
        try:
            if self.conn is None:
                self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=3)
                self.conn.execute(SQL("LISTEN {}").format(Identifier(str(self.channel))))
                return  # events committed before the LISTEN: the caller looks first
            deadline = time.monotonic() + timeout
            while not self.stop.is_set and (left := deadline - time.monotonic()) > 0:
                # In slices, so that a stop request is seen within half a second.
                for _ in self.conn.notifies(timeout=min(left, 0.5), stop_after=1):
                    return
        except psycopg.Error as error:
            log.warning("publish.listen_failed", error=str(error))
            self.close()
            self.stop.wait(min(timeout, self.POLL))

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None


class Publisher:
    def __init__(
        self,
        app: LedgerApplication,
        settings: Settings,
        stop: StopFlag,
        *,
        batch_size: int = 2000,
        idle_wait: float = 1.0,  # the longest wait for new events when no NOTIFY comes
    ) -> None:
        assert settings.kafka_bootstrap, "LEDGER_KAFKA_BOOTSTRAP is required for `ledger publish`"
        self.app = app
        self.settings = settings
        self.stop = stop
        self.batch_size = batch_size
        self.idle_wait = idle_wait
        self.topic = settings.topic_events
        self.position_name = POSITION_NAME.format(topic=self.topic)
        # An event has no fixed size bound (an invoice lists its charges): past the broker's
        # default ~1 MB one would stop the publisher at that event for good.
        ensure_topics(settings.kafka_bootstrap, [self.topic], max_message_bytes=LARGE_RECORD_BYTES)
        self.producer: KafkaProducer = make_producer(
            settings.kafka_bootstrap, max_request_size=LARGE_RECORD_BYTES
        )
        self._append = RecordAppender(self.producer, self.topic)
        self.db = Database(settings.database_url)
        self.positions = PositionStore(self.db)
        self.published = 0
        self.decoder = Decoder(app.mapper)
        self._partitions: tuple[list[int], dict[bytes, int]] = ([], {})
        # The last position sent (None: read the stored one), and the batch sent whose acks
        # are not yet checked: its futures and last position.
        self._sent_to: int | None = None
        self._in_flight: tuple[list[Any], int] | None = None
        channel = getattr(app.recorder, "channel_name", None)
        self.new_events = NewEvents(settings.database_url if self.db.is_postgres else None,
                                    channel, stop)  # fmt: skip

    def run(self) -> int:
        try:
            if not self._wait_for_leadership():
                return self.published
            log.info(
                "publish.started", topic=self.topic, position=self.positions.get(self.position_name)
            )
            while not self.stop.is_set:
                try:
                    sent = self.publish_once()
                except TRANSIENT_DB_ERRORS as error:
                    log.warning("publish.database_unavailable", error=str(error))
                    self._sent_to, self._in_flight = None, None  # again from the stored one
                    self._reconnect()
                    continue
                if sent == 0:
                    self.new_events.wait(self.idle_wait)
            with contextlib.suppress(*TRANSIENT_DB_ERRORS):  # else re-sent after a restart
                self._settle()
        finally:
            self.new_events.close()
            self.producer.close(timeout=10)
            log.info("publish.stopped", published=self.published)
        return self.published

    def publish_once(self) -> int:
        """Send the next batch, then settle the previous one (its acks, then its position);
        returns how many events were sent. With nothing new, settles what is in flight."""
        if self._sent_to is None:
            self._sent_to = self.positions.get(self.position_name)
            self.db.commit()
        notifications = self.app.recorder.select_notifications(self._sent_to + 1, self.batch_size)
        if not notifications:
            self._settle()
            LOG_HEAD.set(self._sent_to)
            return 0
        futures = []
        partition = self._partitioner()
        bodies = [b for n in notifications if (b := self.decoder.published(n)) is not None]
        # Downstream gets personal fields in clear (or [erased]): SPEC §13, ledger/app/erasure.py
        reveal = self.app.revealer()
        reveal.prefetch(bodies)
        append, send, topic = self._append, self.producer.send, self.topic
        for body in map(reveal, bodies):
            key = body["customer_id"].encode("utf-8")
            value = to_json_bytes(body)
            number = partition(key)
            if number is None:  # a partitioner configured otherwise: let it pick
                futures.append(send(topic, key=key, value=value))
            else:
                futures.append(append(number, key, value))
        self._settle()
        self._in_flight = (futures, notifications[-1].id)
        self._sent_to = notifications[-1].id
        if len(notifications) < self.batch_size:  # the log's end: no next batch to overlap
            self._settle()
        return len(futures)

    def _settle(self) -> None:
        """Wait for the acks of the batch in flight, then store its last position."""
        if self._in_flight is None:
            return
        futures, last = self._in_flight
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not take it: position stays
        self.positions.set(self.position_name, last)
        self.db.commit()
        self._in_flight = None
        self.published += len(futures)
        EVENTS_PUBLISHED.inc(len(futures))
        PUBLISH_POSITION.set(last)
        LOG_HEAD.set(max(last, self.app.head_position()))
        log.info("publish.batch", events=len(futures), position=last)

    def _partitioner(self) -> Callable[[bytes], int | None]:
        """The partition kafka-python's default partitioner picks for a key (murmur2 of the
        key over the sorted partitions), worked out once per customer instead of per event."""
        if not isinstance(self.producer.config["partitioner"], DefaultPartitioner):
            return lambda key: None
        partitions = sorted(self.producer.partitions_for(self.topic))
        if partitions != self._partitions[0]:
            self._partitions = (partitions, {})
        cache = self._partitions[1]

        def partition(key: bytes) -> int:
            found = cache.get(key)
            if found is None:
                found = cache[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            return found

        return partition

    def _wait_for_leadership(self) -> bool:
        if not self.db.is_postgres:
            return True
        while not self.stop.is_set:
            row = self.db.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_ID,)).fetchone()
            self.db.commit()
            if row and row[0]:
                return True
            log.info("publish.standby", reason="another publisher holds the lock")
            self.stop.wait(2.0)
        return False

    def _reconnect(self) -> None:
        while not self.stop.is_set:
            self.stop.wait(1.0)
            try:
                self.db.close()
            except Exception:  # the old connection is already broken
                log.debug("publish.close_failed")
            try:
                self.db = Database(self.settings.database_url)
                self.positions = PositionStore(self.db)
                if self._wait_for_leadership():
                    return
            except TRANSIENT_DB_ERRORS as error:
                log.warning("publish.database_unavailable", error=str(error))
