"""The audit's fast path over stored rows (ledger/app/chainlinks.py): it hashes the same bytes
as the domain's rules (ledger/domain/hashchain.py), accepts an intact chain, and hands every
stream it cannot vouch for to the slow path at the last event it verified."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any
from uuid import UUID, uuid4

import pytest

from ledger.app.chainlinks import Unsettled, check_rows, rule_body
from ledger.domain.hashchain import GENESIS, chain_hash, chain_hash_v2

STREAM = UUID("6077e19c-7fb6-5dee-bcea-83b8c6957cda")
SID = str(STREAM)
START = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
RECORDED = datetime(2025, 2, 1, 9, 30, 0, 123456, tzinfo=UTC)
TOPIC = "ledger.domain.events:ChargePosted"


def stored(position: int, prev: str, *, rule: int = 2, data: dict[str, Any] | None = None,
           first_topic: str | None = None, stream: UUID = STREAM) -> dict[str, Any]:  # fmt: skip
    """An event's stored JSON as the store keeps it (the transcoder's form), hashed by the
    domain's own rule."""
    data = data if data is not None else {"charge_id": f"C-{position}", "amount": "10.00",
                                          "é\u2028": [1, None, {"z": 1, "a": "x"}]}  # fmt: skip
    occurred = START + timedelta(days=position)
    common: dict[str, Any] = dict(position=position, event_type="ChargePosted",
                                  customer_id="contoso", occurred_at=occurred,
                                  recorded_at=RECORDED, data=data, prev_hash=prev)  # fmt: skip
    if rule == 2:
        digest = chain_hash_v2(stream_id=stream, message_id=f"m-{position}",
                               originator_topic=first_topic, **common)  # fmt: skip
    else:
        digest = chain_hash(**common)
    state: dict[str, Any] = {
        "timestamp": {"_type_": "datetime_iso", "_data_": RECORDED.isoformat()},
        "customer_id": "contoso",
        "occurred_at": {"_type_": "datetime_iso", "_data_": occurred.isoformat()},
        "message_id": f"m-{position}", "data": data, "prev_hash": prev, "hash": digest,
    }  # fmt: skip
    if first_topic is not None:
        state["originator_topic"] = first_topic
    return state


def chain(rules: list[int], stream: UUID = STREAM) -> list[dict[str, Any]]:
    states, prev = [], GENESIS
    for position, rule in enumerate(rules, start=1):
        topic = "ledger.domain.account:CustomerAccount" if position == 1 and rule == 2 else None
        state = stored(position, prev, rule=rule, first_topic=topic, stream=stream)
        states.append(state)
        prev = state["hash"]
    return states


def rows(states: list[dict[str, Any]], sid: str = SID) -> list[tuple[str, int, str, bytes]]:
    return [(sid, n, TOPIC, json.dumps(s).encode()) for n, s in enumerate(states, start=1)]


def test_rule_bodies_hash_what_the_domain_rules_hash() -> None:
    for rule in (1, 2):
        state = stored(3, "a" * 64, rule=rule, first_topic=None)
        body = rule_body(rule, stream_id=SID, position=3, event_type="ChargePosted",
                         fields=state, prev_hash="a" * 64)  # fmt: skip
        assert sha256(body).hexdigest() == state["hash"]


def test_an_intact_chain_is_accepted_with_its_head_and_the_wanted_hashes() -> None:
    states = chain([2, 2, 2])
    other = uuid4()
    found = check_rows(rows(states) + rows(chain([2], other), str(other)),
                       {SID: frozenset({2}), str(other): frozenset({9})})  # fmt: skip
    assert found.checked == 4 and found.unsettled == []
    assert (SID, "contoso", 3, states[2]["hash"]) in found.heads
    assert found.hash_at == {(SID, 2): states[1]["hash"]}


def test_the_32_hex_digit_ids_of_sqlite_are_named_as_uuids() -> None:
    found = check_rows(rows(chain([2, 2]), STREAM.hex), {})
    assert found.heads[0][0] == SID and found.checked == 2


def test_older_rule_1_events_then_rule_2_are_accepted_but_never_back() -> None:
    assert check_rows(rows(chain([1, 1, 2])), {}).checked == 3
    found = check_rows(rows(chain([1, 2, 1])), {})
    assert found.checked == 2
    assert found.unsettled == [Unsettled(SID, "contoso", 2, chain([1, 2, 1])[1]["hash"], 2)]


def edit_amount(state: dict[str, Any]) -> None:
    state["data"]["amount"] = "99.00"


def edit_time_type(state: dict[str, Any]) -> None:
    state["occurred_at"]["_type_"] = "date_iso"  # the same text, read back as something else


def add_member(state: dict[str, Any]) -> None:
    state["apply"] = 1  # a member no rule hashes


def edit_link(state: dict[str, Any]) -> None:
    state["prev_hash"] = "f" * 64


def add_class_version(state: dict[str, Any]) -> None:
    state["class_version"] = 2


@pytest.mark.parametrize("edit", [edit_amount, edit_time_type, add_member, edit_link,
                                  add_class_version])  # fmt: skip
def test_a_changed_event_stops_the_stream_at_the_last_event_verified(edit: Any) -> None:
    states = chain([2, 2, 2, 2])
    edit(states[2])
    found = check_rows(rows(states), {})
    assert found.checked == 2 and found.heads == []
    assert found.unsettled == [Unsettled(SID, "contoso", 2, states[1]["hash"], 2)]


def test_a_missing_position_or_an_unreadable_row_stops_the_stream() -> None:
    states = chain([2, 2, 2])
    gap = [r for r in rows(states) if r[1] != 2]
    assert check_rows(gap, {}).unsettled == [Unsettled(SID, "contoso", 1, states[0]["hash"], 2)]
    garbled = rows(states)
    garbled[0] = (SID, 1, TOPIC, b"{not json")
    assert check_rows(garbled, {}).unsettled == [Unsettled(SID, None, 0, GENESIS, 1)]


def test_a_stream_after_a_stopped_one_is_still_checked() -> None:
    later = UUID(int=STREAM.int + 1)
    first, second = chain([2, 2]), chain([2, 2], later)
    edit_amount(first[0])
    found = check_rows(rows(first) + rows(second, str(later)), {})
    assert [u.stream_id for u in found.unsettled] == [SID]
    assert [h[0] for h in found.heads] == [str(later)] and found.checked == 2
