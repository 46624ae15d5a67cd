"""What every stream of the ledger shares: events chained by hash, time passed in.

`Meta` says where a command comes from; `ChainedStream` starts a stream and appends to it so
that each event carries the hash of every stored field and of the event before it (hash rule
version 2, ledger/domain/hashchain.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from ledger.domain import events as ev
from ledger.domain.hashchain import GENESIS, chain_hash_v2


@dataclass(frozen=True, slots=True)
class Meta:
    """Where a command comes from: the message (if any), its business time, and now."""

    occurred_at: datetime
    recorded_at: datetime
    message_id: str | None = None
    fingerprint: str | None = None


class ChainedStream(Aggregate):
    customer_id: str
    head_hash: str

    @classmethod
    def _start(
        cls,
        event_class: type[ev.LedgerEvent],
        stream_id: UUID,
        stream_name: str,
        data: dict[str, Any],
        meta: Meta,
    ) -> Self:
        """Create the stream with its first event, chained to the genesis hash."""
        digest = chain_hash_v2(
            stream_id=stream_id,
            position=cls.INITIAL_VERSION,
            event_type=event_class.__name__,
            customer_id=stream_name,
            occurred_at=meta.occurred_at,
            recorded_at=meta.recorded_at,
            message_id=meta.message_id,
            originator_topic=get_topic(cls),  # what _create stores in the event
            data=data,
            prev_hash=GENESIS,
        )
        return cls._create(
            event_class,  # type: ignore[arg-type]
            id=stream_id,
            timestamp=meta.recorded_at,
            customer_id=stream_name,
            occurred_at=meta.occurred_at,
            message_id=meta.message_id,
            data=data,
            prev_hash=GENESIS,
            hash=digest,
        )

    def _emit(
        self,
        event_class: type[ev.LedgerEvent],
        data: dict[str, Any],
        meta: Meta,
        *,
        occurred_at: datetime | None = None,
        caused_by_message: bool = False,
    ) -> None:
        """Trigger the next event of the stream, chained to the previous one's hash."""
        occurred = occurred_at or meta.occurred_at
        message_id = meta.message_id if caused_by_message else None
        if caused_by_message and meta.fingerprint is not None:
            data = dict(data, fingerprint=meta.fingerprint)
        digest = chain_hash_v2(
            stream_id=self.id,
            position=self.version + 1,
            event_type=event_class.__name__,
            customer_id=self.customer_id,
            occurred_at=occurred,
            recorded_at=meta.recorded_at,
            message_id=message_id,
            originator_topic=None,
            data=data,
            prev_hash=self.head_hash,
        )
        # What the library's trigger_event does, with the event made as the library makes
        # the events it reads back (Mapper.to_domain_event: its __dict__ set, the fields in
        # declaration order, which is the order they are stored in): the frozen dataclass's
        # __init__ and the keyword copies cost ~2 µs an event on the ingest path.
        event = object.__new__(event_class)
        object.__setattr__(event, "__dict__", {
            "originator_id": self.id,
            "originator_version": self.version + 1,
            "timestamp": meta.recorded_at,
            "customer_id": self.customer_id,
            "occurred_at": occurred,
            "message_id": message_id,
            "data": data,
            "prev_hash": self.head_hash,
            "hash": digest,
        })  # fmt: skip
        event.mutate(self)
        self._pending_events.append(event)
