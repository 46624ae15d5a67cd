"""Tamper evidence: every event carries the hash of its content chained to the previous event."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_string = json.encoder.encode_basestring  # = json.dumps(text, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """One byte-exact JSON form of a value (sorted keys, no spaces), the input of every hash."""
    return _CANONICAL.encode(value)  # = json.dumps(value, sort_keys=True, ...), encoder reused


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
    if type(customer_id) is str and type(event_type) is str and type(prev_hash) is str and (
        type(position) is int
    ):
        # canonical_json of the dict below, written out: its keys in sorted order, only
        # `data` left to the encoder (the same bytes, without building and sorting a dict).
        body = (
            '{"customer_id":' + _string(customer_id)
            + ',"data":' + _CANONICAL.encode(data)
            + ',"event_type":' + _string(event_type)
            + ',"occurred_at":' + _string(occurred_at.isoformat())
            + ',"position":' + str(position)
            + ',"prev_hash":' + _string(prev_hash)
            + ',"recorded_at":' + _string(recorded_at.isoformat())
            + "}"
        )  # fmt: skip
        return hashlib.sha256(body.encode("utf-8")).hexdigest()
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
