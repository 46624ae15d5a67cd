"""The hash chains checked straight from the stored rows (SPEC §4, §13): the fast path of
`ledger audit verify` and `ledger audit checkpoint`, without building domain events.

An event's hash is recomputed from its stored JSON: the body of its hash rule
(ledger/domain/hashchain.py) is one dict dumped by orjson with sorted keys, the same bytes as
`canonical_json` (see `rule_body`). Rows come whole streams at a time, in version order
(ledger/store/chainscan.py reads them, split by stream id over a few processes), so a stream
needs no lookup in a dict of every stream per event.

Anything the fast path does not accept — a hash that does not match, a missing position, a
row it cannot read, another transcoding — stops that stream there and hands it back as
`Unsettled`: the slow path (ledger/app/checkpoints.py, through the domain decoder) decides
and names what is wrong. The fast path accepts only an event whose stored fields hash to its
stored hash under a rule, so it cannot pass a tampered event off as intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson

from ledger.domain.hashchain import GENESIS

_SORTED = orjson.OPT_SORT_KEYS

Row = tuple[str, int, str, bytes]  # stream id (hyphenated or 32 hex digits), version, topic, state


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A stream the fast path stopped on: it verified versions 1..`version` (ending with
    hash `head_hash`, under rule `rule`); the slow path takes it from `version` + 1."""

    stream_id: str
    name: str | None  # the customer id of its first event (None: no event accepted yet)
    version: int
    head_hash: str
    rule: int


@dataclass
class ChainScan:
    """What the fast path found over some whole streams."""

    checked: int = 0
    heads: list[tuple[str, str, int, str]] = field(default_factory=list)  # id, name, version, hash
    hash_at: dict[tuple[str, int], str] = field(default_factory=dict)
    unsettled: list[Unsettled] = field(default_factory=list)

    def merge(self, other: ChainScan) -> None:
        self.checked += other.checked
        self.heads += other.heads
        self.hash_at.update(other.hash_at)
        self.unsettled += other.unsettled


def rule_body(
    rule: int, *, stream_id: str, position: int, event_type: str, fields: Mapping[str, Any],
    prev_hash: str,
) -> bytes:  # fmt: skip
    """The bytes hashed under `rule` (1: `chain_hash`, 2: `chain_hash_v2`) for the stored JSON
    `fields` of an event: the rule's dict dumped by orjson with sorted keys, which is
    `canonical_json` for JSON-decoded values (keys sorted by code point, no spaces, no ASCII
    escaping). Where they could differ (a float written another way) the hash only fails to
    match, and the slow path decides. Raises KeyError/TypeError on a missing or mistyped
    field."""
    occurred, recorded = _timestamps(fields)
    if rule == 2:
        return _rule2(stream_id, position, event_type, fields, prev_hash, occurred, recorded)
    return orjson.dumps({
        "customer_id": fields["customer_id"], "data": fields["data"], "event_type": event_type,
        "occurred_at": occurred, "position": position, "prev_hash": prev_hash,
        "recorded_at": recorded,
    }, option=_SORTED)  # fmt: skip


def _timestamps(fields: Mapping[str, Any]) -> tuple[str, str]:
    """The stored text of `occurred_at` and `timestamp` (the recording time): what the domain
    decoder reads back as datetimes whose `isoformat()` the rules hash."""
    occurred, recorded = fields["occurred_at"], fields["timestamp"]
    if occurred["_type_"] != "datetime_iso" or recorded["_type_"] != "datetime_iso":
        raise TypeError("a timestamp is not stored as an ISO datetime")
    texts = occurred["_data_"], recorded["_data_"]
    if type(texts[0]) is not str or type(texts[1]) is not str:
        raise TypeError("a timestamp's text is not a string")
    return texts


def _rule2(
    stream_id: str, position: int, event_type: str, fields: Mapping[str, Any], prev_hash: str,
    occurred: str, recorded: str,
) -> bytes:  # fmt: skip
    # The hot path of every verify: positional arguments, one dict, one call into orjson.
    return orjson.dumps({
        "customer_id": fields["customer_id"], "data": fields["data"], "event_type": event_type,
        "message_id": fields["message_id"], "occurred_at": occurred,
        "originator_topic": fields.get("originator_topic"), "position": position,
        "prev_hash": prev_hash, "recorded_at": recorded, "stream_id": stream_id, "v": 2,
    }, option=_SORTED)  # fmt: skip


# The members of an event's stored JSON (ledger/domain/hashchain.py HASHED_FIELDS but the
# two kept in columns, and `hash`); the first event of a stream also has "originator_topic".
_MEMBERS = 7


def stored_link(
    stream_id: str, position: int, topic: str, state: bytes, prev_hash: str, rule: int
) -> tuple[str, str, int] | None:
    """(hash, customer id, rule) when the stored event links to `prev_hash` and its stored
    fields hash to its stored hash under rule 2, or under rule 1 while its stream is still on
    rule 1 (`rule`); None for anything else. Only what the domain decoder reads back as these
    very values is accepted: two timestamps transcoded as ISO datetimes, no class version to
    upcast from, no member beyond the hashed ones."""
    try:
        fields = orjson.loads(state)
        if fields["prev_hash"] != prev_hash or len(fields) != _MEMBERS + (
            "originator_topic" in fields
        ):
            return None
        occurred, recorded = _timestamps(fields)
        stored, customer_id = fields["hash"], fields["customer_id"]
        if type(customer_id) is not str:  # it names the stream in checkpoints
            return None
        event_type = topic[topic.index(":") + 1 :]
        body = _rule2(stream_id, position, event_type, fields, prev_hash, occurred, recorded)
        if sha256(body).hexdigest() == stored:
            return stored, customer_id, 2
        if rule == 1:  # an older event, written before rule 2
            body = rule_body(1, stream_id=stream_id, position=position, event_type=event_type,
                             fields=fields, prev_hash=prev_hash)  # fmt: skip
            if sha256(body).hexdigest() == stored:
                return stored, customer_id, 1
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return None
    return None


def hyphenated(text: str) -> str:
    """A stream id as `str(UUID)` writes it (SQLite stores the 32 hex digits)."""
    if len(text) == 32:
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return text


def check_rows(rows: Iterable[Row], wanted: Mapping[str, frozenset[int]]) -> ChainScan:
    """Check the chains of `rows`: whole streams, each in version order. `wanted`: stream id
    → versions whose hash to note in `hash_at` (for the checkpoints being verified)."""
    result = ChainScan()
    heads, hash_at, unsettled = result.heads, result.hash_at, result.unsettled
    checked = 0
    current: str | None = None
    sid, name = "", None  # name: the first event's customer id, once accepted
    version, prev, rule, stopped = 0, GENESIS, 1, False
    want: frozenset[int] = frozenset()
    for raw_id, position, topic, state in rows:
        if raw_id != current:
            if current is not None and not stopped and name is not None:
                heads.append((sid, name, version, prev))
            current, sid = raw_id, hyphenated(raw_id)
            name, version, prev, rule, stopped = None, 0, GENESIS, 1, False
            want = wanted.get(sid, frozenset())
        elif stopped:
            continue
        link = (stored_link(sid, position, topic, state, prev, rule)
                if position == version + 1 else None)  # fmt: skip
        if link is None:
            unsettled.append(Unsettled(sid, name, version, prev, rule))
            stopped = True
            continue
        prev, customer_id, rule = link
        if version == 0:  # a stream is named by its first event, never by a later one
            name = customer_id
        version = position
        checked += 1
        if position in want:
            hash_at[(sid, position)] = prev
    if current is not None and not stopped and name is not None:
        heads.append((sid, name, version, prev))
    result.checked = checked
    return result


# (stream id, first version, last version, last event's topic, its state, the state before
# it (None for a stream of one event), the first event's state)
EndRow = tuple[str, int, int, str, bytes, bytes | None, bytes]


def check_ends(rows: Iterable[EndRow]) -> list[tuple[str, str, int, str]] | None:
    """Every stream's (id, name, version, head hash) from its first and newest events alone,
    or None when any of them is not what an intact chain ends with (a stream not starting at
    version 1, a newest event that does not hash to its hash or does not link to the event
    before it, a first event that cannot be read): then only a full check can say what is
    wrong."""
    heads = []
    for raw_id, first, last, topic, state, before, first_state in rows:
        sid = hyphenated(raw_id)
        try:
            name = orjson.loads(first_state)["customer_id"]
            prev = GENESIS if before is None else orjson.loads(before)["hash"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if first != 1 or type(name) is not str or type(prev) is not str:
            return None
        if (before is None) != (last == 1):
            return None
        link = stored_link(sid, last, topic, state, prev, 1)  # rule 1 or 2
        if link is None:
            return None
        heads.append((sid, name, last, link[0]))
    return heads
