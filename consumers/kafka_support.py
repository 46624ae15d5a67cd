"""Kafka plumbing shared by the loops: clients configured for a ledger (no auto commit,
idempotent producer), topic creation, graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
import psycopg
import psycopg_pool
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = structlog.get_logger(__name__)

# Failures that mean "the database is not there right now": wait and retry, never dead-letter.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    InterfaceError,
    OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)


def make_consumer(bootstrap: str, group_id: str, **overrides: Any) -> KafkaConsumer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,  # offsets are committed only after the database commit
        "auto_offset_reset": "earliest",
        "max_poll_records": 1000,
        "session_timeout_ms": 10000,
        "heartbeat_interval_ms": 3000,
        "max_poll_interval_ms": 300000,
        # A fetch waits for 32 KB (~100 messages) or 100 ms, whichever comes first: at a
        # moderate rate, fewer and larger batches (each costs a transaction and an offset
        # commit) took a third off the consumers' CPU (benchmarks, 2,500 msg/s).
        "fetch_max_wait_ms": 100,
        "fetch_min_bytes": 32 * 1024,
    }
    config.update(overrides)
    return KafkaConsumer(**config)


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 128 * 1024,
        "max_in_flight_requests_per_connection": 5,
    }
    config.update(overrides)
    return KafkaProducer(**config)


# The accumulator's `append` RecordAppender was written against (kafka-python 3.0.12); it
# returns (future, batch_is_full, new_batch_created, abort_for_new_batch).
_APPEND_PARAMETERS = ("tp", "timestamp_ms", "key", "value", "headers", "now",
                      "abort_on_new_batch")  # fmt: skip


def _known_append(accumulator: Any) -> bool:
    import inspect

    append = getattr(accumulator, "append", None)
    if append is None:
        return False
    return tuple(inspect.signature(append).parameters) == _APPEND_PARAMETERS


class RecordAppender:
    """`producer.send(topic, key=, value=, partition=)` for bytes with a known partition, at
    about half its CPU (13-17 against 24-27 µs a record, same producer settings): straight
    into the producer's record accumulator, as `send` does after its per-record checks
    (serializers, header validation, a metadata lookup, the size estimate, a debug log line
    that formats the producer each time): ~10 of `ledger publish`'s ~54 µs per event
    (benchmarks/profile_publish.py). Same batches, sequence numbers and futures, so
    ordering, idempotence and acks are the producer's own. A record that could come near a
    batch's size, a transactional producer (`send` adds the partition to the transaction)
    or a producer without an accumulator (another kafka-python) goes through `send`."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        transactions = getattr(producer, "_transaction_manager", None)
        direct = transactions is None or not transactions.is_transactional()
        self._accumulator = getattr(producer, "_accumulator", None) if direct else None
        if not _known_append(self._accumulator):  # another kafka-python: its own `send`
            self._accumulator = None
        self._sender = getattr(producer, "_sender", None)
        self._small = producer.config["batch_size"] // 2
        self._partitions: dict[int, TopicPartition] = {}

    def __call__(self, partition: int, key: bytes, value: bytes) -> Any:
        if self._accumulator is None or self._sender is None or len(value) > self._small:
            return self.producer.send(self.topic, key=key, value=value, partition=partition)
        tp = self._partitions.get(partition)
        if tp is None:
            tp = self._partitions[partition] = TopicPartition(self.topic, partition)
        future, _, new_batch, _ = self._accumulator.append(tp, None, key, value, [])
        if new_batch:
            # Not for "full" too, as `send` does: that is also true of every record appended
            # while an earlier batch of the partition waits for its turn, and each wakeup is
            # a socket write; the sender checks again when a response comes back anyway.
            self._sender.wakeup()
        return future


# The largest record the ledger's own topics take (`ledger.events`, `ledger.checkpoints`): an
# event or a checkpoint line has no fixed bound (an invoice lists its charges, a checkpoint
# every stream), and a topic made with the broker's defaults refuses past ~1 MB, which stops
# the publisher at that record for good. 64 MiB stays under the broker's default
# socket.request.max.bytes (100 MiB).
LARGE_RECORD_BYTES = 64 * 1024 * 1024


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 4,
    max_message_bytes: int | None = None,
    *,
    raise_existing: bool = True,
) -> None:
    """Create the topics that do not exist yet; with `max_message_bytes`, make every one of
    them take records (compressed batches) of that size: created so, and (`raise_existing`)
    the topic-level `max.message.bytes` of an existing one raised when lower (never
    lowered). Raises kafka errors when the broker refuses."""
    names = list(topics)
    configs = {_MAX_BYTES: str(max_message_bytes)} if max_message_bytes else None
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs)
            for name in names
            if name not in existing
        ]
        if missing:
            # Another process may create it first.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        if max_message_bytes and raise_existing:
            for name in names:
                _raise_max_message_bytes(admin, name, max_message_bytes)
    finally:
        admin.close()


def _raise_max_message_bytes(admin: KafkaAdminClient, topic: str, max_bytes: int) -> None:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={_MAX_BYTES: None})
    described = admin.describe_configs([resource], config_filter="all")
    current = int(described["topic"][topic][_MAX_BYTES]["value"])
    if current < max_bytes:
        raised = ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={_MAX_BYTES: str(max_bytes)}
        )
        admin.alter_configs([raised])
        log.info("kafka.topic.max_message_bytes", topic=topic, was=current, now=max_bytes)


_MAX_BYTES = "max.message.bytes"


def to_json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON. orjson gives byte for byte what
    json.dumps(value, separators=(",", ":"), ensure_ascii=False) gives (checked on every
    code point), ~5x faster; what it refuses (an int beyond 64 bits) goes to json."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class StopFlag:
    """Set by SIGTERM/SIGINT: the loop finishes its batch, commits, and exits 0."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.set())
        return self

    def set(self) -> None:
        log.info("stop.requested")
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


def unconsumed(bootstrap: str, topic: str, next_offsets: dict[int, int]) -> int:
    """Records on `topic` past the given next offsets (per partition): a consumer's true lag,
    whatever order its partitions progress in."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(max(end - next_offsets.get(tp.partition, 0), 0) for tp, end in ends.items())
    finally:
        consumer.close()


T = TypeVar("T")


def wait_for_store(connect: Callable[[], T], stop: StopFlag, what: str) -> T | None:
    """connect() (e.g. build the application, which creates its tables), again with backoff
    while the database is unreachable or restarting: a service started during an outage
    waits instead of dying with a traceback (and a supervisor's crash loop). None when
    stopped meanwhile."""
    delay = 0.5
    while True:
        try:
            return connect()
        except TRANSIENT_DB_ERRORS as error:
            log.warning(f"{what}.database_unavailable", error=str(error), retry_in=delay)
            if stop.wait(delay):
                return None
            delay = min(delay * 2, 10.0)
