"""A dead letter: a record the ledger refused, with the original bytes, where it came from
and the typed reason (SPEC §3 codes). Where dead letters are kept is ledger.store.deadletters
(no Kafka) or `billing.deadletter` (consumers/)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DeadLetter:
    code: str
    message: str
    source: str
    raw: str
    raw_encoding: str = "utf-8"
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    id: int | None = None
    created_at: str | None = None
    replayed_at: str | None = None

    @classmethod
    def of(cls, raw: bytes | str, code: str, message: str, source: str, **where: Any) -> DeadLetter:
        text, encoding = encode_raw(raw)
        return cls(code=code, message=message, source=source, raw=text, raw_encoding=encoding,
                   **where)  # fmt: skip

    def raw_bytes(self) -> bytes:
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def encode_raw(raw: bytes | str) -> tuple[str, str]:
    """UTF-8 text as is; anything else as base64 so the original bytes survive."""
    if isinstance(raw, str):
        return raw, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dumps(letters: list[DeadLetter]) -> str:
    return json.dumps([d.to_json() for d in letters], indent=2)
