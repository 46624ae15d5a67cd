"""Audit checkpoints, the pure rules (ledger/domain/merkle.py): the documented leaf and node
encoding, HMAC authentication, and what a difference between a checkpoint and the store means."""

from __future__ import annotations

import hashlib
import hmac

from ledger.domain.hashchain import canonical_json
from ledger.domain.merkle import (
    StreamHead,
    authentic,
    build_checkpoint,
    check_shape,
    compare,
    merkle_root,
)

KEY = bytes(range(32))
A = StreamHead("00000000-0000-0000-0000-00000000000a", "contoso", 5, "a" * 64)
B = StreamHead("00000000-0000-0000-0000-00000000000b", "fabrikam", 6, "b" * 64)
C = StreamHead("00000000-0000-0000-0000-00000000000c", "northwind", 1, "c" * 64)


def leaf(head: StreamHead) -> bytes:
    body = canonical_json([head.stream_id, head.name, head.version, head.head_hash])
    return hashlib.sha256(b"\x00" + body.encode()).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_root_follows_the_documented_encoding_in_stream_id_order() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()
    assert merkle_root([A]) == leaf(A).hex()
    assert merkle_root([B, A]) == node(leaf(A), leaf(B)).hex()
    # an odd last node is carried up unchanged
    assert merkle_root([C, A, B]) == node(node(leaf(A), leaf(B)), leaf(C)).hex()


def test_any_change_of_a_head_changes_the_root() -> None:
    root = merkle_root([A, B])
    assert merkle_root([A, StreamHead(B.stream_id, B.name, 5, B.head_hash)]) != root
    assert merkle_root([A, StreamHead(B.stream_id, B.name, 6, "d" * 64)]) != root
    assert merkle_root([A]) != root


def test_checkpoint_is_authenticated_by_hmac_sha256_of_its_canonical_body() -> None:
    cp = build_checkpoint(checkpoint_id="cp-1", taken_at="2025-02-01T00:00:00+00:00",
                          global_position=12, heads=[B, A], key=KEY)  # fmt: skip
    body = {k: v for k, v in cp.items() if k != "hmac"}
    expected = hmac.new(KEY, canonical_json(body).encode(), hashlib.sha256).hexdigest()
    assert cp["hmac"] == expected
    assert cp["streams"] == [A.to_json(), B.to_json()]
    assert cp["event_count"] == 11 and cp["stream_count"] == 2
    assert authentic(cp, KEY)
    assert not authentic(cp, bytes(32))
    assert not authentic(dict(cp, global_position=13), KEY)
    assert not authentic({k: v for k, v in cp.items() if k != "hmac"}, KEY)


def test_a_checkpoint_whose_streams_do_not_match_its_root_is_inconsistent() -> None:
    cp = build_checkpoint(checkpoint_id="cp-1", taken_at="t", global_position=12,
                          heads=[A, B], key=KEY)  # fmt: skip
    assert check_shape(cp) == ([A, B], None)
    altered = dict(cp, streams=[A.to_json()])
    assert check_shape(altered)[1] == "its merkle_root does not match the streams it lists"
    assert "malformed" in str(check_shape(dict(cp, streams=[["x"]]))[1])


def test_compare_names_deleted_stream_truncated_stream_and_rewritten_events() -> None:
    versions = {A.stream_id: 5, B.stream_id: 4}
    hashes = {(A.stream_id, 5): "e" * 64}
    found = compare("cp-1", [A, B, C], versions, hashes)
    assert [(f.kind, f.stream) for f in found] == [
        ("events_rewritten", "contoso"), ("events_deleted", "fabrikam"),
        ("stream_deleted", "northwind"),
    ]  # fmt: skip
    assert "now at version 4, checkpoint cp-1 had version 6" in found[1].message


def test_a_stream_that_grew_since_the_checkpoint_is_fine() -> None:
    assert compare("cp-1", [A], {A.stream_id: 9}, {(A.stream_id, 5): A.head_hash}) == []
