"""Audit checkpoints (SPEC §13): the pure rules — Merkle root over stream heads, HMAC-SHA256
over the checkpoint, and the comparison of a checkpoint with the store as it is now.

Encoding (stable: a checkpoint written today must verify in ten years):

- A *head* is one stream as it stood: ``(stream_id, name, version, head_hash)`` — the stream's
  UUID (lower-case, hyphenated), its name (the customer id, or the Microsoft remittance
  stream's name), its last event's position (1-based) and that event's chain hash (64 hex).
- Leaves are the heads sorted by ``stream_id`` (string order). A leaf's hash is
  ``SHA-256(0x00 || canonical_json([stream_id, name, version, head_hash]))`` (UTF-8 bytes,
  canonical JSON = sorted keys, no spaces, ledger/domain/hashchain.py).
- An inner node is ``SHA-256(0x01 || left || right)`` over the two 32-byte child digests.
  Levels pair neighbours left to right; an odd last node is carried up unchanged. The 0x00 /
  0x01 prefixes (RFC 6962's) keep a leaf from ever being passed off as a node.
- The root of no heads is ``SHA-256(b"")``. Roots are written as 64 lower-case hex digits.
- The HMAC is ``HMAC-SHA256(key, canonical_json(body))`` where body is the checkpoint's JSON
  object without its ``"hmac"`` member; written as 64 lower-case hex digits.

Standard library only (hashlib, hmac): no hand-written cryptography.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.domain.hashchain import canonical_json

CHECKPOINT_FORMAT = 1  # the "v" member of every checkpoint line
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


@dataclass(frozen=True, slots=True, order=True)
class StreamHead:
    """One stream at checkpoint time: UUID string, name, last position, last chain hash."""

    stream_id: str
    name: str
    version: int
    head_hash: str

    def to_json(self) -> list[Any]:
        return [self.stream_id, self.name, self.version, self.head_hash]

    @classmethod
    def from_json(cls, value: Any) -> StreamHead:
        """Raises ValueError naming what is wrong with a stored ``[id, name, version, hash]``."""
        if not (isinstance(value, list) and len(value) == 4):
            raise ValueError(f"a stream head is [id, name, version, head_hash], not {value!r}")
        stream_id, name, version, head_hash = value
        if not (isinstance(stream_id, str) and isinstance(name, str) and type(version) is int
                and isinstance(head_hash, str)):  # fmt: skip
            raise ValueError(f"a stream head has the wrong types: {value!r}")
        return cls(stream_id, name, version, head_hash)


def leaf_hash(head: StreamHead) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + canonical_json(head.to_json()).encode("utf-8")).digest()


def merkle_root(heads: Iterable[StreamHead]) -> str:
    """The hex Merkle root of the heads (sorted here by stream id; see the module docstring)."""
    level = [leaf_hash(h) for h in sorted(heads, key=lambda h: h.stream_id)]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [
            hashlib.sha256(NODE_PREFIX + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def sign(body: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 hex of the canonical JSON of `body` (without any "hmac" member)."""
    payload = {k: v for k, v in body.items() if k != "hmac"}
    return hmac.new(key, canonical_json(payload).encode("utf-8"), hashlib.sha256).hexdigest()


def authentic(checkpoint: Mapping[str, Any], key: bytes) -> bool:
    """True when the checkpoint's "hmac" is the one `key` gives (constant-time compare)."""
    mac = checkpoint.get("hmac")
    return isinstance(mac, str) and hmac.compare_digest(mac, sign(checkpoint, key))


def build_checkpoint(
    *,
    checkpoint_id: str,
    taken_at: str,
    global_position: int,
    heads: Sequence[StreamHead],
    key: bytes,
) -> dict[str, Any]:
    """The checkpoint as its JSON object: ``{"v", "checkpoint_id", "taken_at" (ISO 8601 UTC),
    "global_position", "stream_count", "event_count" (sum of versions), "merkle_root",
    "streams": [[id, name, version, head_hash], …] sorted by id, "hmac"}``."""
    ordered = sorted(heads, key=lambda h: h.stream_id)
    body: dict[str, Any] = {
        "v": CHECKPOINT_FORMAT,
        "checkpoint_id": checkpoint_id,
        "taken_at": taken_at,
        "global_position": global_position,
        "stream_count": len(ordered),
        "event_count": sum(h.version for h in ordered),
        "merkle_root": merkle_root(ordered),
        "streams": [h.to_json() for h in ordered],
    }
    body["hmac"] = sign(body, key)
    return body


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a checkpoint proves is wrong: `kind` is a stable code, `message` names it."""

    kind: str  # bad_checkpoint | bad_hmac | stream_deleted | events_deleted | events_rewritten
    checkpoint_id: str
    message: str
    stream: str | None = None


def check_shape(checkpoint: Mapping[str, Any]) -> tuple[list[StreamHead], str | None]:
    """The heads of a checkpoint and None, or [] and why its content is inconsistent (the
    Merkle root or counts do not match the streams listed, or a member is malformed)."""
    try:
        if checkpoint.get("v") != CHECKPOINT_FORMAT:
            return [], f"unknown checkpoint format {checkpoint.get('v')!r}"
        heads = [StreamHead.from_json(item) for item in checkpoint["streams"]]
        if checkpoint["merkle_root"] != merkle_root(heads):
            return [], "its merkle_root does not match the streams it lists"
        if checkpoint["stream_count"] != len(heads):
            return [], "its stream_count does not match the streams it lists"
        if type(checkpoint["global_position"]) is not int:
            return [], "its global_position is not an integer"
    except (KeyError, TypeError, ValueError) as error:
        return [], f"malformed ({type(error).__name__}: {error})"
    return heads, None


def compare(
    checkpoint_id: str,
    heads: Sequence[StreamHead],
    current_version: Mapping[str, int],
    hash_at: Mapping[tuple[str, int], str],
) -> list[Finding]:
    """What the store now contradicts in a checkpoint's heads.

    `current_version`: stream id → its last position now; `hash_at`: (stream id, position) →
    the chain hash of that event now, for at least every checkpointed (id, version)."""
    found: list[Finding] = []
    for head in heads:
        label = f"stream {head.name} ({head.stream_id})"
        now = current_version.get(head.stream_id)
        if now is None:
            found.append(Finding("stream_deleted", checkpoint_id,
                                 f"{label}: deleted (checkpoint {checkpoint_id} had it at "
                                 f"version {head.version})", head.name))  # fmt: skip
        elif now < head.version:
            found.append(Finding("events_deleted", checkpoint_id,
                                 f"{label}: newest events deleted (now at version {now}, "
                                 f"checkpoint {checkpoint_id} had version {head.version})",
                                 head.name))  # fmt: skip
        elif hash_at.get((head.stream_id, head.version)) != head.head_hash:
            found.append(Finding("events_rewritten", checkpoint_id,
                                 f"{label}: events rewritten (the hash of version "
                                 f"{head.version} differs from checkpoint {checkpoint_id})",
                                 head.name))  # fmt: skip
    return found
