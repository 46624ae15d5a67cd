"""A decision on one message, store-wide (SPEC §3): `applied` or `refused`, with the payload
fingerprint and where it was decided; the key of a record without a readable message_id.
Where decisions are kept (`ledger_messages`, in the events' transaction) is
ledger.store.decisions and ledger.store.pgrecorder."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

APPLIED, REFUSED = "applied", "refused"


class Decision(NamedTuple):
    """One row of `ledger_messages`. `outcome` is APPLIED or REFUSED; `code`/`reason` are
    the dead letter's (REFUSED only); source/partition/offset say where it was decided.
    A named tuple, not a frozen dataclass: one is made for every message ingested, and a
    frozen dataclass's constructor costs twice as much (object.__setattr__ per field)."""

    key: str
    fingerprint: str
    customer_id: str | None
    outcome: str
    code: str | None = None
    reason: str | None = None
    source: str | None = None
    partition: int | None = None
    offset: int | None = None
    decided_at: str = ""

    def row(self) -> tuple[Any, ...]:
        """The `ledger_messages` columns in order (ledger.store.decisions.COLUMNS)."""
        return tuple(self)

    def same_position(self, source: str, partition: int | None, offset: int | None) -> bool:
        return (self.source, self.partition, self.offset) == (source, partition, offset)


def raw_key(raw: bytes | str, source: str, partition: int | None, offset: int | None) -> str:
    """The key of a record that has no readable message_id: where it is, and its bytes."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    return f"raw:{source}:{partition}:{offset}:{hashlib.sha256(data).hexdigest()}"


def raw_fingerprint(raw: bytes | str) -> str:
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


__all__ = ["APPLIED", "REFUSED", "Decision", "raw_fingerprint", "raw_key"]
