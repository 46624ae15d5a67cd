"""From raw records (a JSONL line, a Kafka record) to events or dead letters.

Shared by `ledger ingest` (no Kafka) and `ledger consume` (Kafka): same validation, same
idempotency, same dead-letter codes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from eventsourcing.persistence import PersistenceError

from ledger.app.application import LedgerApplication
from ledger.app.backoff import StoreBusy, with_backoff
from ledger.app.batching import BatchResult, Item, Refused, Source
from ledger.app.deadletters import DeadLetter
from ledger.app.decisions import raw_fingerprint, raw_key
from ledger.domain.errors import LedgerError
from ledger.messages import MAX_MESSAGE_BYTES, parse_message, parse_object

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RawRecord:
    value: bytes | str
    source: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | str | None = None
    replay: bool = False  # re-submitted on purpose (`ledger deadletters replay`)
    # The JSON object `value` encodes, when the producer has it at hand (`ledger bill`):
    # validated as is (ledger.messages.parse_object, the same checks), not decoded again.
    decoded: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def where(self) -> dict[str, object]:
        key = self.key.decode("utf-8", "replace") if isinstance(self.key, bytes) else self.key
        return {"partition": self.partition, "offset": self.offset, "key": key}


@dataclass
class IngestCounts:
    applied: int = 0
    duplicate: int = 0
    deadlettered: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    refused_before: int = 0  # refused on an earlier delivery: not decided again
    refusals: list[DeadLetter] = field(default_factory=list)  # those, as their letters read
    resent: int = 0  # of those, dead letters made again (Kafka, same source position)
    stored: bool = False  # the dead letters are already in the database (embedded)

    def add(self, other: IngestCounts) -> None:
        self.applied += other.applied
        self.duplicate += other.duplicate
        self.deadlettered += other.deadlettered
        self.dead_letters.extend(other.dead_letters)
        self.refused_before += other.refused_before
        self.refusals.extend(other.refusals)
        self.resent += other.resent
        self.stored = self.stored or other.stored


class Unprocessable(LedgerError):
    """The message broke processing (an exception no validator foresaw, e.g. a date out of
    range): it is dead-lettered with the exception as its reason; the stream goes on."""

    code = "unprocessable"


# Failures of the store itself, not of a message: never dead-lettered (the consumer waits
# them out; `ledger ingest` reports them in one line). The driver's own (psycopg.Error,
# psycopg_pool.PoolTimeout) are known by where their classes come from, so this layer does
# not import the database driver.
_STORE_ERRORS: tuple[type[BaseException], ...] = (
    StoreBusy,  # other writers kept winning: not the message's fault
    PersistenceError,
    sqlite3.Error,
)
_DRIVER_ERRORS = {("psycopg", "Error"), ("psycopg_pool", "PoolTimeout")}


def _store_failure(error: BaseException) -> bool:
    if isinstance(error, _STORE_ERRORS):
        return True
    return any(
        (cls.__module__.split(".")[0], cls.__name__) in _DRIVER_ERRORS
        for cls in type(error).__mro__
    )


def _dead(record: RawRecord, error: LedgerError) -> DeadLetter:
    return DeadLetter.of(record.value, error.code, error.message, record.source, **record.where())


def _item(record: RawRecord) -> Item:
    try:
        if record.decoded is not None and len(record.value) <= MAX_MESSAGE_BYTES // 4:
            return parse_object(record.decoded, key=record.key)
        return parse_message(record.value, key=record.key)
    except LedgerError as error:
        return Refused(
            key=raw_key(record.value, record.source, record.partition, record.offset),
            fingerprint=raw_fingerprint(record.value),
            error=error,
        )


def _poison(record: RawRecord, item: Item, error: Exception) -> Refused:
    reason = f"cannot be processed: {type(error).__name__}: {error}"
    if isinstance(item, Refused):
        return Refused(item.key, item.fingerprint, Unprocessable(reason), item.customer_id)
    return Refused(item.message_id, item.fingerprint(), Unprocessable(reason), item.customer_id)


def process_records(
    app: LedgerApplication,
    records: Sequence[RawRecord],
    *,
    store_dead_letters: bool = False,
    resend_refused: bool = False,
    retry_timeout: float | None = None,
) -> IngestCounts:
    """Apply a batch of raw records in one transaction; bad ones become dead letters.

    Every record is decided once (ledger.store.decisions): delivered again, it gets the same
    outcome (`duplicate`; `refused_before` when it was refused) unless its
    RawRecord says `replay`. With `store_dead_letters` (embedded mode) the dead letters are
    written in the batch's transaction; otherwise the caller stores (or sends) the returned
    ones, then commits its source position. With `resend_refused` (Kafka) a record refused
    before AT THE SAME source position is dead-lettered again: the crash that made it come
    back may have come before its dead letter was sent (the topic is at-least-once; its
    letters are keyed by source position).

    When the batch fails with an exception that is not the store's (a poison message), it
    is retried record by record: the one that fails is dead-lettered (`unprocessable`, with
    the exception) and the rest applied. Another writer first: retried with backoff
    (StoreBusy after `retry_timeout`). Store failures (database down) are raised.
    """
    items = [_item(record) for record in records]
    try:
        result = _write(app, records, items, store_dead_letters, retry_timeout)
    except Exception as error:  # one message broke processing: find it, go on
        if _store_failure(error):
            raise
        if len(records) == 1:
            log.error("ingest.unprocessable", error=f"{type(error).__name__}: {error}",
                      source=records[0].source, **records[0].where())  # fmt: skip
            items = [_poison(records[0], items[0], error)]
            result = _write(app, records, items, store_dead_letters, retry_timeout)
        else:
            log.warning("ingest.batch_failed_isolating", records=len(records),
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
            counts = IngestCounts()
            for record in records:
                counts.add(process_records(
                    app, [record], store_dead_letters=store_dead_letters,
                    resend_refused=resend_refused, retry_timeout=retry_timeout,
                ))  # fmt: skip
            return counts
    return _count(records, items, result, resend_refused, store_dead_letters)


def _write(
    app: LedgerApplication,
    records: Sequence[RawRecord],
    items: list[Item],
    store_dead_letters: bool,
    retry_timeout: float | None,
) -> BatchResult:
    sources = [Source(r.source, r.partition, r.offset, r.replay) for r in records]

    def letters(result: BatchResult) -> list[DeadLetter]:
        return [
            _dead(record, outcome.error)
            for record, outcome in zip(records, result.outcomes, strict=True)
            if outcome.status == "rejected" and outcome.error is not None
        ]

    return with_backoff(
        lambda: app.handle_batch(
            items, sources=sources, dead_letters=letters if store_dead_letters else None
        ),
        what="ingest",
        timeout=retry_timeout,
    )


def _count(
    records: Sequence[RawRecord],
    items: list[Item],
    result: BatchResult,
    resend_refused: bool,
    stored: bool,
) -> IngestCounts:
    counts = IngestCounts(stored=stored)
    for record, item, outcome in zip(records, items, result.outcomes, strict=True):
        if outcome.status == "applied":  # the common case: nothing to log
            counts.applied += 1
            continue
        fields = {"customer_id": item.customer_id, "source": record.source, **record.where(),
                  "message_id": None if isinstance(item, Refused) else item.message_id}  # fmt: skip
        if outcome.status == "duplicate":
            counts.duplicate += 1
            log.debug("ingest.duplicate", **fields)
        elif outcome.status == "refused_before":
            assert outcome.prior is not None and outcome.error is not None
            if resend_refused and outcome.prior.same_position(
                record.source, record.partition, record.offset
            ):
                counts.dead_letters.append(_dead(record, outcome.error))
                counts.resent += 1
            counts.refused_before += 1
            counts.refusals.append(_dead(record, outcome.error))
            log.info("ingest.refused_before", code=outcome.error.code, **fields)
        else:
            assert outcome.error is not None
            counts.dead_letters.append(_dead(record, outcome.error))
            log.warning("ingest.rejected", code=outcome.error.code, reason=outcome.error.message,
                        **fields)  # fmt: skip
    counts.deadlettered = len(counts.dead_letters)
    return counts
