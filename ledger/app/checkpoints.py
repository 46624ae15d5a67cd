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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from ledger.app.application import LedgerApplication
from ledger.app.audit import BrokenLink, _check_link
from ledger.app.chainlinks import ChainScan, EndRow, Row, Unsettled, check_ends, check_rows
from ledger.domain import events as ev
from ledger.domain.errors import LedgerError
from ledger.domain.hashchain import canonical_json
from ledger.domain.merkle import Finding, StreamHead, authentic, build_checkpoint, check_shape
from ledger.domain.merkle import compare as compare_heads

log = structlog.get_logger(__name__)


class CheckpointRefused(LedgerError):
    """A checkpoint cannot be taken: no key, or the store's chains are already broken."""


@dataclass
class Walk:
    """One pass over the store: chains checked, every stream's head, and the hashes of the
    positions some checkpoint names."""

    checked: int = 0
    broken: list[BrokenLink] = field(default_factory=list)  # the first break of each stream
    heads: dict[str, StreamHead] = field(default_factory=dict)  # stream id → head now
    hash_at: dict[tuple[str, int], str] = field(default_factory=dict)
    global_position: int = 0


class ChainScanner(Protocol):
    """The fast read of every stream's rows (ledger/store/chainscan.py): the global position
    now, and the fast path of ledger/app/chainlinks.py over every row up to it."""

    def position(self) -> int: ...

    def scan(self, wanted: Mapping[str, frozenset[int]], upto: int) -> ChainScan: ...

    def ends(self, upto: int) -> list[EndRow]: ...


def walk(
    ledger: LedgerApplication,
    wanted: set[tuple[str, int]] | None = None,
    scanner: ChainScanner | None = None,
) -> Walk:
    """Recompute every stream's chain (on past a break, so every stream's head is known) and
    note the hash at each (stream id, position) in `wanted`.

    The fast path (ledger/app/chainlinks.py) checks the stored rows, through `scanner` when
    given (the store read by stream id ranges in parallel processes), else read here from the
    notification log; the streams it stops on are decided here, by the domain decoder."""
    by_stream: dict[str, set[int]] = {}
    for sid, version in wanted or ():
        by_stream.setdefault(sid, set()).add(version)
    versions = {sid: frozenset(v) for sid, v in by_stream.items()}
    if scanner is not None:
        position = scanner.position()
        scanned = scanner.scan(versions, position)
    else:
        position, rows = _stored_rows(ledger)
        scanned = check_rows(rows, versions)
    result = Walk(checked=scanned.checked, hash_at=scanned.hash_at, global_position=position)
    result.heads = {sid: StreamHead(sid, name, v, h) for sid, name, v, h in scanned.heads}
    for stopped in sorted(scanned.unsettled, key=lambda u: u.stream_id):
        _settle(ledger, stopped, versions.get(stopped.stream_id, frozenset()), result)
    result.broken.sort(key=lambda b: (b.customer_id, b.position))
    return result


def _stored_rows(ledger: LedgerApplication) -> tuple[int, list[Row]]:
    """The global position and every stored row in stream and version order, read from the
    notification log (a store no other connection can read: in memory)."""
    position, rows = 0, []
    for n in ledger.notifications():
        position = n.id
        rows.append((str(n.originator_id), n.originator_version, n.topic, n.state))
    rows.sort(key=lambda row: (row[0], row[1]))
    return position, rows


def _settle(
    ledger: LedgerApplication, stopped: Unsettled, wanted: frozenset[int], result: Walk
) -> None:
    """The slow path for a stream the fast path stopped on: each event after the last one it
    accepted decoded and checked by `_check_link`, which names what is wrong (the first break
    of the stream); on to the stream's last event, so its head is known."""
    sid = stopped.stream_id
    version, prev_hash, rule, ok = stopped.version, stopped.head_hash, stopped.rule, True
    name = stopped.name if stopped.name is not None else sid
    for stored in ledger.recorder.select_events(uuid.UUID(sid), gt=stopped.version):
        try:
            event = ledger.mapper.to_domain_event(stored)
            assert isinstance(event, ev.LedgerEvent)
        except Exception as exc:  # any decoding failure means the row was altered
            if ok:
                result.broken.append(BrokenLink(name, stored.originator_version,
                                                f"event cannot be decoded: {exc}"))  # fmt: skip
            version, prev_hash, ok = stored.originator_version, "?", False
            continue
        if version == 0:  # a stream is named by its first event, never by a later one
            name = event.customer_id
        if ok:
            checked = _check_link(event, version, prev_hash, name, rule)
            if isinstance(checked, BrokenLink):
                result.broken.append(checked)
                ok = False
            else:
                rule = checked
                result.checked += 1
        version, prev_hash = event.originator_version, event.hash
        result.heads[sid] = StreamHead(sid, name, version, event.hash)
        if version in wanted:
            result.hash_at[(sid, version)] = event.hash


class CheckpointKeeper(Protocol):
    """Where checkpoints are kept (ledger/store/checkpoints.py: the `audit_checkpoints` table)."""

    def add(self, checkpoint: dict[str, Any], line: str) -> None: ...


def take_checkpoint(
    ledger: LedgerApplication,
    store: CheckpointKeeper,
    key: bytes | None,
    out: Path | None = None,
    now: datetime | None = None,
    scanner: ChainScanner | None = None,
) -> tuple[dict[str, Any], str]:
    """Take every stream's head, build and sign a checkpoint, store it, append it to `out`
    (one line).

    With `scanner`, the heads come from each stream's first and newest events alone (one
    query, not a read of every event): each newest event must hash to its hash and link to
    the one before it, each stream must start at version 1. Anything else, or no scanner,
    and every chain is walked. An edit further back is left to `audit verify`, which names
    it whether or not a checkpoint was taken since; re-hashing the chain to hide it changes
    the head this checkpoint pins.

    Returns (checkpoint object, its JSON line). Raises CheckpointRefused without a key (an
    unauthenticated checkpoint would prove nothing against someone who can write the store)
    or when the walk finds a chain broken (a checkpoint must not bless a tampered store)."""
    if key is None:
        raise CheckpointRefused("LEDGER_AUDIT_KEY is not set: a checkpoint must be authenticated")
    walked = _heads(scanner) if scanner is not None else None
    walked = walked or walk(ledger, scanner=scanner)
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


def _heads(scanner: ChainScanner) -> Walk | None:
    """The heads from every stream's ends (see `take_checkpoint`); None: walk every chain."""
    position = scanner.position()
    heads = check_ends(scanner.ends(position))
    if heads is None:
        return None
    found = Walk(global_position=position)  # `checked` stays 0: no chain was walked
    found.heads = {sid: StreamHead(sid, name, v, h) for sid, name, v, h in heads}
    return found


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
    ledger: LedgerApplication,
    key: bytes | None,
    sources: Iterable[tuple[str, str]],
    scanner: ChainScanner | None = None,
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
    walked = walk(ledger, wanted, scanner)
    versions = {sid: head.version for sid, head in walked.heads.items()}
    for _label, checkpoint, heads in usable:
        findings.extend(compare_heads(str(checkpoint["checkpoint_id"]), heads, versions,
                                      walked.hash_at))  # fmt: skip
    latest = max((c for _, c, _ in usable), key=lambda c: c["global_position"], default=None)
    return Verification(walked, len(usable), findings, key is not None, latest)
