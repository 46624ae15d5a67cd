"""The fingerprint, the chain hash and the stored event state are dumped by orjson; the bytes
must stay those of the json module (canonical form: sorted keys, no spaces, no ASCII
escaping), or an old message re-sent would become a `conflict`, `ledger audit verify` would
fail on an untampered ledger, or a stored value would read back as another type. Checked on
generated JSON values, the strings that json and orjson could escape differently, and the
values orjson refuses or writes its own way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.hashchain import (
    canonical_bytes,
    chain_hash_v2,
    hash_version_of,
)

STREAM = UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
AT = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


def reference(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hashes(data: dict[str, Any]) -> tuple[str, str]:
    fields: dict[str, Any] = dict(
        stream_id=STREAM, position=3, event_type="ChargePosted", customer_id="c-1",
        occurred_at=AT, recorded_at=AT, message_id="m-1", originator_topic=None, data=data,
        prev_hash="0" * 64,
    )  # fmt: skip
    return chain_hash_v2(**fields), chain_hash_v2(**fields, exact=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(st.text(), json_values, max_size=6)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_fingerprint_bytes_are_the_json_modules(doc: dict[str, Any]) -> None:
    assert canonical_bytes(doc) == reference(doc)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_chain_hash_is_the_json_rules(data: dict[str, Any]) -> None:
    fast, exact = hashes(data)
    assert fast == exact


def test_every_code_point_escapes_alike() -> None:
    # Every control character, the characters JSON escapes, DEL, the BMP's edges, a
    # character beyond it, and keys that sort differently by UTF-16 than by code point.
    text = "".join(chr(c) for c in range(0x00, 0x80)) + "\u2028\u2029\ufeff\uffff\U0001f600"
    doc = {"\uff61": text, "\U0001f600": 1, "a": [text, {"z": None, "é": True}]}
    assert canonical_bytes(doc) == reference(doc)
    fast, exact = hashes(doc)
    assert fast == exact


def test_what_orjson_refuses_goes_through_the_json_module() -> None:
    big = {"quantity": 2**70, "key": {1: "a non-string key"}}
    assert (
        canonical_bytes(big)
        == json.dumps(big, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    fast, exact = hashes(big)
    assert fast == exact
    # A lone surrogate has no UTF-8: refused as before (messages refuse it earlier).
    lone = {"note": "\ud800"}
    with pytest.raises(UnicodeEncodeError):
        canonical_bytes(lone)
    with pytest.raises(UnicodeEncodeError):
        hashes(lone)


class ChargePosted(SimpleNamespace):
    """A stored event as hash_version_of reads it (its class name is the event type)."""


def test_an_event_hashed_with_a_float_still_verifies() -> None:
    # orjson and json write 1e-07 differently: the exact rule is the one such an event was
    # hashed with, and verification tries it.
    data = {"rate": 1e-07}
    fast, exact = hashes(data)
    assert fast != exact
    event = ChargePosted(
        originator_id=STREAM, originator_version=3, customer_id="c-1", occurred_at=AT,
        timestamp=AT, message_id="m-1", data=data, prev_hash="0" * 64, hash=exact,
    )  # fmt: skip
    assert hash_version_of(event) == 2
    event.hash = "f" * 64
    assert hash_version_of(event) is None


def _transcoders() -> tuple[Any, Any]:
    from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex

    from ledger.store.transcoder import LedgerTranscoder

    made = (JSONTranscoder(), LedgerTranscoder())
    for transcoder in made:
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            transcoder.register(transcoding)
    return made


@settings(max_examples=300, deadline=None)
@given(documents)
def test_stored_state_is_the_librarys_json(data: dict[str, Any]) -> None:
    library, ledger = _transcoders()
    state = {"timestamp": AT, "customer_id": "c-1", "occurred_at": AT, "message_id": None,
             "data": data, "prev_hash": "0" * 64, "hash": "f" * 64}  # fmt: skip
    assert ledger.encode(state) == library.encode(state)
    assert ledger.decode(ledger.encode(state)) == state


def test_stored_state_with_uuids_floats_or_decimals_decodes_alike() -> None:
    from decimal import Decimal

    library, ledger = _transcoders()
    for data in ({"id": STREAM}, {"rate": 1e-07}, {"amount": Decimal("1.50")}, {"t": (1, 2)},
                 {"big": 2**70}):  # fmt: skip
        state = {"timestamp": AT, "data": data}
        assert ledger.encode(state) == library.encode(state)
        assert ledger.decode(ledger.encode(state)) == library.decode(library.encode(state))
