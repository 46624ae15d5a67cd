"""Audit checkpoints (SPEC §13), the use case: take one (walk the store, build, sign, keep it)
and verify the store against every checkpoint kept (in the database and in a JSONL file).

The pure rules (Merkle root, HMAC, what a difference means) are ledger/domain/merkle.py; the
`audit_checkpoints` table is ledger/store/checkpoints.py (`CheckpointStore`); the Kafka copy on
`ledger.checkpoints` is consumers/checkpoints.py.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog

from ledger.app.application import LedgerApplication
from ledger.app.audit import BrokenLink, _check_link
from ledger.domain import events as ev
from ledger.domain.errors import LedgerError
from ledger.domain.hashchain import GENESIS, canonical_json, chain_hash_v2_text
from ledger.domain.merkle import Finding, StreamHead, authentic, build_checkpoint, check_shape
from ledger.domain.merkle import compare as compare_heads

log = structlog.get_logger(__name__)

class CheckpointRefused(LedgerError):
    """A checkpoint cannot be taken: no key, or the store's chains are already broken."""


@dataclass
class Walk:
    """One pass over the notification log: chains checked, every stream's head, and the
    hashes of the positions some checkpoint names."""

    checked: int = 0
    broken: list[BrokenLink] = field(default_factory=list)  # the first break of each stream
    heads: dict[str, StreamHead] = field(default_factory=dict)  # stream id → head now
    hash_at: dict[tuple[str, int], str] = field(default_factory=dict)
    global_position: int = 0


def walk(ledger: LedgerApplication, wanted: set[tuple[str, int]] | None = None) -> Walk:
    """Recompute every stream's chain (as `verify_chains`, but on past a break, so every
    stream's head is known) and note the hash at each (stream id, position) in `wanted`."""
    result = Walk()
    plain = ledger.mapper.cipher is None and ledger.mapper.compressor is None
    state: dict[Any, tuple[int, str, str, int, bool]] = {}
    sids: dict[Any, str] = {}  # stream UUID → its text, made once per stream
    wanted = wanted or set()
    for notification in ledger.notifications():
        originator = notification.originator_id
        version, prev_hash, name, rule, ok = state.get(
            originator, (0, GENESIS, str(originator), 1, True)
        )
        result.global_position = notification.id
        sid = sids.get(originator) or sids.setdefault(originator, str(originator))
        fast = _fast_link(notification, sid, version, prev_hash, plain) if ok else None
        if fast is not None:  # verified under rule 2 without building the domain event
            head_hash, stream_name = fast
            if version == 0:
                name = stream_name
            result.checked += 1
            state[originator] = (notification.originator_version, head_hash, name, 2, True)
            result.heads[sid] = StreamHead(sid, name, notification.originator_version, head_hash)
            if (sid, notification.originator_version) in wanted:
                result.hash_at[(sid, notification.originator_version)] = head_hash
            continue
        try:
            event = ledger.mapper.to_domain_event(notification)
            assert isinstance(event, ev.LedgerEvent)
        except Exception as exc:  # any decoding failure means the row was altered
            if ok:
                result.broken.append(BrokenLink(name, notification.originator_version,
                                                f"event cannot be decoded: {exc}"))  # fmt: skip
            state[originator] = (notification.originator_version, "?", name, rule, False)
            continue
        if version == 0:
            name = event.customer_id
        if ok:
            checked = _check_link(event, version, prev_hash, name, rule)
            if isinstance(checked, BrokenLink):
                result.broken.append(checked)
                ok = False
            else:
                rule = checked
                result.checked += 1
        sid = str(originator)
        state[originator] = (event.originator_version, event.hash, name, rule, ok)
        result.heads[sid] = StreamHead(sid, name, event.originator_version, event.hash)
        if (sid, event.originator_version) in wanted:
            result.hash_at[(sid, event.originator_version)] = event.hash
    return result


_TAG = b'"_type_"'


def _canonical_data(data: Any) -> str:
    """canonical_json(data), by orjson when it can: the same text for JSON-decoded data
    (keys sorted by code point = by UTF-8 bytes, no spaces, no ASCII escaping); what it
    refuses goes to json. A difference could only make a hash mismatch (the slow path),
    never a match."""
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return canonical_json(data)


def _fast_link(
    notification: Any, stream_id: str, last_version: int, prev_hash: str, plain: bool
) -> tuple[str, str] | None:
    """(hash, stream name) when the stored event links to `prev_hash` at the next position
    and its stored fields hash, under rule 2, to the hash it carries — read straight from
    its JSON (as ledger/store/wire.py does for a rebuild). None means "decide the slow way" (the
    domain decoder and `_check_link`, which also say what is wrong): anything unusual, any
    mismatch. It only ever accepts what the slow path would accept."""
    state = notification.state
    if not plain or state.count(_TAG) != 2 or notification.originator_version != last_version + 1:
        return None
    try:
        fields = orjson.loads(state)
        occurred, recorded = fields["occurred_at"], fields["timestamp"]
        if (occurred.get("_type_") != "datetime_iso" or recorded.get("_type_") != "datetime_iso"
                or "class_version" in fields or fields["prev_hash"] != prev_hash):  # fmt: skip
            return None
        topic = notification.topic
        digest = chain_hash_v2_text(
            stream_id=stream_id,
            position=notification.originator_version,
            event_type=topic[topic.index(":") + 1 :],
            customer_id=fields["customer_id"],
            occurred_at=occurred["_data_"],
            recorded_at=recorded["_data_"],
            message_id=fields["message_id"],
            originator_topic=fields.get("originator_topic"),
            data_json=_canonical_data(fields["data"]),
            prev_hash=prev_hash,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return None
    if digest != fields.get("hash"):
        return None
    return digest, fields["customer_id"]


class CheckpointKeeper(Protocol):
    """Where checkpoints are kept (ledger/store/checkpoints.py: the `audit_checkpoints` table)."""

    def add(self, checkpoint: dict[str, Any], line: str) -> None: ...


def take_checkpoint(
    ledger: LedgerApplication,
    store: CheckpointKeeper,
    key: bytes | None,
    out: Path | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Walk the store, build and sign a checkpoint, store it, append it to `out` (one line).

    Returns (checkpoint object, its JSON line). Raises CheckpointRefused without a key (an
    unauthenticated checkpoint would prove nothing against someone who can write the store)
    or when a chain is already broken (a checkpoint must not bless a tampered store)."""
    if key is None:
        raise CheckpointRefused("LEDGER_AUDIT_KEY is not set: a checkpoint must be authenticated")
    walked = walk(ledger)
    if walked.broken:
        first = walked.broken[0]
        raise CheckpointRefused(
            f"no checkpoint taken: customer {first.customer_id} position {first.position}: "
            f"{first.reason} (run `ledger audit verify`)"
        )
    taken_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    checkpoint = build_checkpoint(
        checkpoint_id=f"cp-{uuid.uuid4().hex[:16]}",
        taken_at=taken_at,
        global_position=walked.global_position,
        heads=list(walked.heads.values()),
        key=key,
    )
    line = canonical_json(checkpoint)
    store.add(checkpoint, line)
    if out is not None:
        with out.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    log.info("audit.checkpoint", checkpoint_id=checkpoint["checkpoint_id"],
             global_position=walked.global_position, streams=checkpoint["stream_count"],
             merkle_root=checkpoint["merkle_root"])  # fmt: skip
    return checkpoint, line


def file_lines(path: Path) -> list[tuple[str, str]]:
    """(where, line) of every non-blank line of a checkpoints file."""
    text = path.read_text(encoding="utf-8")
    return [(f"{path} line {n}", line) for n, line in enumerate(text.splitlines(), start=1)
            if line.strip()]  # fmt: skip


@dataclass
class Verification:
    """What `audit verify` found: chain results, and per checkpoint what is proven."""

    walk: Walk
    checkpoints: int = 0  # distinct checkpoints compared with the store
    findings: list[Finding] = field(default_factory=list)
    authenticated: bool = False  # True when the key checked every HMAC
    latest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.walk.broken and not self.findings


def verify(
    ledger: LedgerApplication, key: bytes | None, sources: Iterable[tuple[str, str]]
) -> Verification:
    """Check every chain, then every checkpoint line of `sources` ((where, JSON line)) against
    the store. With `key`, a line whose HMAC does not match is a finding (`bad_hmac`) and is
    not trusted further; without it, lines are compared but not authenticated."""
    parsed: list[tuple[str, dict[str, Any]]] = []
    findings: list[Finding] = []
    seen: set[str] = set()
    for where, line in sources:
        try:
            checkpoint = json.loads(line)
            if not isinstance(checkpoint, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            problem = f"{where}: not a checkpoint ({error})"
            findings.append(Finding("bad_checkpoint", where, problem))
            continue
        canonical = canonical_json(checkpoint)
        if canonical in seen:  # the same checkpoint in the database and in the file
            continue
        seen.add(canonical)
        parsed.append((where, checkpoint))
    usable: list[tuple[str, dict[str, Any], list[StreamHead]]] = []
    for where, checkpoint in parsed:
        cid = str(checkpoint.get("checkpoint_id", "?"))
        label = f"checkpoint {cid} ({where})"
        if key is not None and not authentic(checkpoint, key):
            findings.append(Finding("bad_hmac", cid, f"{label}: HMAC does not match: the "
                                    "checkpoint was forged or altered"))  # fmt: skip
            continue
        heads, problem = check_shape(checkpoint)
        if problem is not None:
            findings.append(Finding("bad_checkpoint", cid, f"{label}: {problem}"))
            continue
        usable.append((label, checkpoint, heads))
    wanted = {(h.stream_id, h.version) for _, _, heads in usable for h in heads}
    walked = walk(ledger, wanted)
    versions = {sid: head.version for sid, head in walked.heads.items()}
    for _label, checkpoint, heads in usable:
        findings.extend(compare_heads(str(checkpoint["checkpoint_id"]), heads, versions,
                                      walked.hash_at))  # fmt: skip
    latest = max((c for _, c, _ in usable), key=lambda c: c["global_position"], default=None)
    return Verification(walked, len(usable), findings, key is not None, latest)
