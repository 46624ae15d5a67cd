"""From raw records (a JSONL line, a Kafka record) to events or dead letters.

Shared by `ledger ingest` (no Kafka) and `ledger consume` (Kafka): same validation, same
idempotency, same dead-letter codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from ledger.application import LedgerApplication
from ledger.deadletters import DeadLetter
from ledger.domain.errors import LedgerError
from ledger.messages import Message, parse_message
from ledger.persistence_errors import ConcurrentWrite

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RawRecord:
    value: bytes | str
    source: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | str | None = None

    def where(self) -> dict[str, object]:
        key = self.key.decode("utf-8", "replace") if isinstance(self.key, bytes) else self.key
        return {"partition": self.partition, "offset": self.offset, "key": key}


@dataclass
class IngestCounts:
    applied: int = 0
    duplicate: int = 0
    deadlettered: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, other: IngestCounts) -> None:
        self.applied += other.applied
        self.duplicate += other.duplicate
        self.deadlettered += other.deadlettered
        self.dead_letters.extend(other.dead_letters)


def _dead(record: RawRecord, error: LedgerError) -> DeadLetter:
    return DeadLetter.of(record.value, error.code, error.message, record.source, **record.where())


def process_records(
    app: LedgerApplication, records: Sequence[RawRecord], *, max_attempts: int = 5
) -> IngestCounts:
    """Apply a batch of raw records in one transaction; bad ones become dead letters.

    The caller stores the returned dead letters, then commits its source position.
    """
    counts = IngestCounts()
    parsed: list[tuple[RawRecord, Message]] = []
    for record in records:
        try:
            parsed.append((record, parse_message(record.value, key=record.key)))
        except LedgerError as error:
            counts.dead_letters.append(_dead(record, error))
    for attempt in range(1, max_attempts + 1):
        try:
            result = app.handle_batch([m for _, m in parsed])
            break
        except ConcurrentWrite:
            # Another process wrote to one of these streams first: reload and try again.
            log.info("ingest.retry_concurrent_write", attempt=attempt)
            if attempt == max_attempts:
                raise
    for (record, message), outcome in zip(parsed, result.outcomes, strict=True):
        fields = {"message_id": message.message_id, "customer_id": message.customer_id,
                  "source": record.source, **record.where()}  # fmt: skip
        if outcome.status == "applied":
            counts.applied += 1
        elif outcome.status == "duplicate":
            counts.duplicate += 1
            log.debug("ingest.duplicate", **fields)
        else:
            assert outcome.error is not None
            counts.dead_letters.append(_dead(record, outcome.error))
            log.warning("ingest.rejected", code=outcome.error.code, reason=outcome.error.message,
                        **fields)  # fmt: skip
    counts.deadlettered = len(counts.dead_letters)
    return counts
