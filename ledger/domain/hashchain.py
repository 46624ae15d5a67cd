"""Tamper evidence: every event carries the hash of its content chained to the previous event.

Two rules, each event verified under the one it was written with:

- version 1 (`chain_hash`, events written before version 2): stream name, position, event
  type, occurred_at, recorded_at, data and the previous hash. It left `message_id`, the
  stream's id and the aggregate topic of a stream's first event outside the chain: editing a
  stored message id went unnoticed and let the original message apply a second time.
- version 2 (`chain_hash_v2`, every event written now): every stored field that carries
  meaning. `HASHED_FIELDS` lists them; the stored state holds nothing else but `hash` itself.

The two bodies differ (version 2 has a `"v":2` member), so an event written under version 2
never verifies under version 1, and `verify_link` tells which rule an event verifies under.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from ledger.domain.isotext import iso_timestamp, uuid_text

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
    if (
        type(customer_id) is str
        and type(event_type) is str
        and type(prev_hash) is str
        and (type(position) is int)
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


HASH_VERSION = 2  # the rule of the events written now
# The stored fields that version 2 covers (with the stream id and position, which the store
# keeps in columns). Everything an event stores is here, but `hash` itself.
HASHED_FIELDS = frozenset({
    "originator_id", "originator_version", "originator_topic", "timestamp", "customer_id",
    "occurred_at", "message_id", "data", "prev_hash",
})  # fmt: skip


def chain_hash_v2(
    *,
    stream_id: UUID,
    position: int,
    event_type: str,
    customer_id: str,
    occurred_at: datetime,
    recorded_at: datetime,
    message_id: str | None,
    originator_topic: str | None,
    data: dict[str, Any],
    prev_hash: str,
    exact: bool = False,
) -> str:
    """sha256 hex of the canonical JSON of every stored field of an event (version 2).

    `originator_topic` is the aggregate class a stream's first event names (None for the
    events after it); `event_type` is the event's class name (its stored topic's class).
    The body is dumped by `canonical_bytes` (orjson, the hot path of every ingest batch); a
    float, which orjson writes another way, never reaches here (messages refuse floats) and
    `hash_version_of` also checks the json module's body (`exact=True`: the rule's
    definition, byte for byte)."""
    body = {
        "customer_id": customer_id, "data": data, "event_type": event_type,
        "message_id": message_id, "occurred_at": iso_timestamp(occurred_at),
        "originator_topic": originator_topic, "position": position, "prev_hash": prev_hash,
        "recorded_at": iso_timestamp(recorded_at), "stream_id": uuid_text(stream_id), "v": 2,
    }  # fmt: skip
    encoded = canonical_json(body).encode("utf-8") if exact else canonical_bytes(body)
    return hashlib.sha256(encoded).hexdigest()


# Sorted keys; the types orjson would write in its own way (datetimes, dataclasses, subclasses
# of str/int/dict/list) raise instead, so they reach the json module as before.
_ORJSON_EXACT = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def canonical_bytes(value: Any) -> bytes:
    """UTF-8 of canonical_json(value), dumped by orjson where that gives the same bytes (~4x
    faster): for JSON values (str, int, bool, None, lists, dicts with string keys) orjson with
    sorted keys writes what the json module writes (keys sorted by code point, no spaces, no
    ASCII escaping; tests/unit/test_canonical_fast.py). What it refuses (an int beyond 64
    bits, a key that is not a string, a datetime...) goes through canonical_json; floats are
    the one JSON value the two write differently (1e-07 / 1e-7): callers hash none."""
    try:
        return orjson.dumps(value, option=_ORJSON_EXACT)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return canonical_json(value).encode("utf-8")


def event_hash(event: Any, version: int = HASH_VERSION, *, exact: bool = False) -> str:
    """The hash a stored event (a LedgerEvent as the store gives it back) should carry under
    rule `version` (1 or 2); `exact`: version 2 through the json module only."""
    if version == 1:
        return chain_hash(
            customer_id=event.customer_id,
            position=event.originator_version,
            event_type=type(event).__name__,
            occurred_at=event.occurred_at,
            recorded_at=event.timestamp,
            data=event.data,
            prev_hash=event.prev_hash,
        )
    return chain_hash_v2(
        stream_id=event.originator_id,
        position=event.originator_version,
        event_type=type(event).__name__,
        customer_id=event.customer_id,
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
        message_id=event.message_id,
        originator_topic=getattr(event, "originator_topic", None),
        data=event.data,
        prev_hash=event.prev_hash,
        exact=exact,
    )


def hash_version_of(event: Any) -> int | None:
    """The rule `event.hash` verifies under (2, else 1), or None when it verifies under none:
    its stored content was changed. Version 2 is also tried through the json module alone:
    an event whose data held a float would have been hashed that way."""
    if event_hash(event, 2) == event.hash or event_hash(event, 2, exact=True) == event.hash:
        return 2
    return 1 if event_hash(event, 1) == event.hash else None
