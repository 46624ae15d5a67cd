"""Audit checkpoints out (SPEC §13): each checkpoint as one record on `ledger.checkpoints`,
so a copy lives outside the database that an attacker would have to rewrite too."""

from __future__ import annotations

from typing import Any

import structlog

from consumers.kafka_support import LARGE_RECORD_BYTES, ensure_topics, make_producer
from ledger.config import Settings
from ledger.domain.errors import LedgerError

log = structlog.get_logger(__name__)

# A checkpoint line lists every stream (~150 bytes each): far past the broker's default 1 MB
# per record at a few thousand customers; 64 MiB carries ~440,000 streams uncompressed.
MAX_CHECKPOINT_RECORD_BYTES = LARGE_RECORD_BYTES


class CheckpointTooLargeForKafka(LedgerError):
    """The checkpoint's line is larger than one Kafka record may be
    (MAX_CHECKPOINT_RECORD_BYTES); it is still kept in the database and the --out file."""


def publish_checkpoint(settings: Settings, checkpoint: dict[str, Any], line: str) -> None:
    """Send the checkpoint's JSON line (key = checkpoint id, gzip-compressed on the wire) and
    wait for the broker's ack; the topic is made to accept records of
    MAX_CHECKPOINT_RECORD_BYTES. Raises CheckpointTooLargeForKafka for a larger line, kafka
    errors otherwise (the CLI reports both in one line, exit 1)."""
    assert settings.kafka_bootstrap
    value = line.encode("utf-8")
    if len(value) > MAX_CHECKPOINT_RECORD_BYTES - 1024:  # room for the record's key and headers
        raise CheckpointTooLargeForKafka(
            f"checkpoint {checkpoint['checkpoint_id']} is {len(value):,} bytes, more than one "
            f"record on {settings.topic_checkpoints} may carry "
            f"({MAX_CHECKPOINT_RECORD_BYTES:,}); it is kept in the database and the --out file"
        )
    topic = settings.topic_checkpoints
    ensure_topics(settings.kafka_bootstrap, [topic], partitions=1,
                  max_message_bytes=MAX_CHECKPOINT_RECORD_BYTES)  # fmt: skip
    producer = make_producer(settings.kafka_bootstrap, max_request_size=MAX_CHECKPOINT_RECORD_BYTES,
                             compression_type="gzip")  # fmt: skip
    try:
        future = producer.send(topic, key=str(checkpoint["checkpoint_id"]).encode("utf-8"),
                               value=value)  # fmt: skip
        metadata = future.get(timeout=60)
    finally:
        producer.close(timeout=10)
    log.info("audit.checkpoint.published", topic=topic, bytes=len(value),
             partition=metadata.partition, offset=metadata.offset)  # fmt: skip
