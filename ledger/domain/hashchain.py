"""Tamper evidence: every event carries the hash of its content chained to the previous event."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    """One byte-exact JSON form of a value (sorted keys, no spaces), the input of every hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    *,
    customer_id: str,
    position: int,
    event_type: str,
    occurred_at: datetime,
    recorded_at: datetime,
    data: dict[str, Any],
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "customer_id": customer_id,
            "position": position,
            "event_type": event_type,
            "occurred_at": occurred_at.isoformat(),
            "recorded_at": recorded_at.isoformat(),
            "data": data,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
