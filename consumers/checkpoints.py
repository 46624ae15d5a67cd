"""Audit checkpoints out (SPEC §13): each checkpoint as one record on `ledger.checkpoints`,
so a copy lives outside the database that an attacker would have to rewrite too."""

from __future__ import annotations

from typing import Any

import structlog

from consumers.kafka_support import ensure_topics, make_producer
from ledger.config import Settings

log = structlog.get_logger(__name__)


def publish_checkpoint(settings: Settings, checkpoint: dict[str, Any], line: str) -> None:
    """Send the checkpoint's JSON line (key = checkpoint id) and wait for the broker's ack.
    Raises kafka errors (the CLI reports them in one line, exit 1)."""
    assert settings.kafka_bootstrap
    ensure_topics(settings.kafka_bootstrap, [settings.topic_checkpoints], partitions=1)
    producer = make_producer(settings.kafka_bootstrap, max_request_size=64 * 1024 * 1024)
    try:
        future = producer.send(
            settings.topic_checkpoints,
            key=str(checkpoint["checkpoint_id"]).encode("utf-8"),
            value=line.encode("utf-8"),
        )
        metadata = future.get(timeout=30)
    finally:
        producer.close(timeout=10)
    log.info("audit.checkpoint.published", topic=settings.topic_checkpoints,
             partition=metadata.partition, offset=metadata.offset)  # fmt: skip
