"""Issue 4: bad input never stops `ledger consume` and is never lost.

A corpus of bad records (every kind a producer gets wrong) interleaved with good ones: each
bad one lands on the dead-letter topic once, with the right `code`, its original bytes
(base64 when not UTF-8), source topic, partition, offset and key; every good one is applied
exactly once; a message with fields of a future schema version is applied, not refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import helpers as h
from tests.e2e.procs import (
    Delivered,
    EventStore,
    GroupProbe,
    Processes,
    assert_exactly_once,
    dead_letters,
    ledger_env,
    make_ingest_topics,
    make_producer,
    mixed_workload,
    produce,
    set_topic_config,
    wait_until,
)

pytestmark = pytest.mark.e2e

BIG = 2 * 1024 * 1024  # topic max.message.bytes and producer max_request_size for the >1 MiB one
AT = "2025-01-20T09:30:00Z"


@dataclass(frozen=True)
class Record:
    """One record to produce: topic kind, key, value; for a bad one, the expected dead letter
    `code` and a word its `message` must contain (the field it names)."""

    kind: str
    key: str | None
    value: bytes | None
    code: str | None = None
    names: str = ""
    applies: bool = True  # a good one that is not a re-send: has exactly one effect


def good(kind: str, key: str, text: str, applies: bool = True) -> Record:
    return Record(kind, key, text.encode(), applies=applies)


def bad(kind: str, key: str | None, value: bytes | None, code: str, names: str = "") -> Record:
    return Record(kind, key, value, code, names, applies=False)


def _doc(text: str, **changes: Any) -> bytes:
    doc = json.loads(text)
    for name, value in changes.items():
        if value is h.OMIT:
            doc.pop(name, None)
        else:
            doc[name] = value
    return json.dumps(doc).encode()


def corpus() -> tuple[list[Record], list[Record], list[Record]]:
    """(registrations, prerequisites, main): the bad records depend on the prerequisites
    (an original charge to conflict with, a resolved ticket, ...), produced before them."""
    workload = mixed_workload(seed=33, customers=12, total=412, prefix="b")
    registrations = [good(i.kind, i.key, i.value.decode()) for i in workload.registrations]
    # A customer billed in EUR, for the currency mismatch.
    registrations.append(good("customers", "b-eur", h.customer_registered("b-eur", currency="EUR")))
    original = h.charge("b-0001", "CH-ORIG", amount="120.00", occurred_at=AT)
    first_pay = h.payment("b-0002", "PAY-ORIG", amount="50.00", occurred_at=AT)
    prerequisites = [
        good("charges", "b-0001", original),
        good("payments", "b-0002", first_pay),
        good("support", "b-0003", h.support_ticket_opened("b-0003", "T-DONE", occurred_at=AT)),
        good("support", "b-0003", h.support_ticket_resolved("b-0003", "T-DONE", occurred_at=AT)),
    ]
    charge = h.charge("b-0004", "CH-BAD", amount="10.00", occurred_at=AT)
    payment = h.payment("b-0005", "PAY-BAD", amount="10.00", occurred_at=AT)
    latin1 = (
        '{"message_id":"upd-latin1","type":"customer_updated","customer_id":"b-0006",'
        f'"occurred_at":"{AT}","name":"Caf\u00e9 S\u00e0rl"}}'
    ).encode("latin-1")
    future = _doc(
        h.charge("b-0007", "CH-FUTURE", amount="99.00", occurred_at=AT),
        schema_version=2, tax={"rate": "0.20", "amount": "19.80"}, tags=["csp", "nce"],
    )  # fmt: skip
    huge = _doc(charge, message_id="chg-huge", charge_id="CH-HUGE", description="x" * 1_200_000)
    # fmt: off
    bad_records = [
        bad("charges", "b-0004", charge.encode()[:-20], "malformed_json", "JSON"),
        bad("customers", "b-0006", latin1, "malformed_json", "UTF-8"),
        bad("charges", "b-0004", b"", "malformed_json", "empty"),
        bad("payments", "b-0005", None, "malformed_json", "empty"),
        bad("charges", "b-0004", b'["charge", "CH-1"]', "malformed_json", "object"),
        bad("charges", "b-0004", charge.replace('"10.00"', "NaN", 1).encode(), "malformed_json"),
        bad("charges", "b-0004", charge.replace("{", '{"type": "charge", ', 1).encode(),
            "malformed_json", "duplicate"),
        bad("charges", "b-0004", _doc(charge, charge_id=h.OMIT), "invalid_message", "charge_id"),
        bad("charges", "b-0004", _doc(charge, type=h.OMIT), "invalid_message", "type"),
        bad("payments", "b-0005", _doc(payment, amount=10.5), "invalid_message", "amount"),
        bad("support", "b-0003", _doc(h.support_interaction("b-0003", "T-DONE"), minutes="15"),
            "invalid_message", "minutes"),
        bad("payments", "b-0005", _doc(payment, amount="-5.00"), "invalid_message", "amount"),
        bad("payments", "b-0005", _doc(payment, amount="ten"), "invalid_message", "amount"),
        bad("charges", "b-0004", _doc(charge, amount="10.001"), "invalid_message", "amount"),
        bad("charges", "b-0004", _doc(charge, occurred_at="2025-01-20T09:30:00"),
            "invalid_message", "occurred_at"),
        bad("charges", "b 4", _doc(charge, customer_id="b 4"), "invalid_message", "customer_id"),
        bad("charges", "b-0004", _doc(charge, type="charge_adjusted"), "unknown_type", "type"),
        bad("charges", "ghost-1", h.charge("ghost-1", "CH-G").encode(), "unknown_customer",
            "customer_id"),
        bad("payments", "b-eur", h.payment("b-eur", "PAY-USD").encode(), "currency_mismatch",
            "currency"),
        bad("charges", "b-0001", _doc(original, message_id="chg-orig-again", amount="121.00"),
            "conflict", "charge"),
        bad("payments", "b-0002", _doc(first_pay, amount="51.00"), "conflict", "message_id"),
        bad("charges", "b-0004", huge, "too_large", "larger"),
        bad("charges", "b-0008", _doc(charge, customer_id="b-0009"), "key_mismatch",
            "customer_id"),
        bad("payments", "b-0005", h.payment_reversed("b-0005", "PAY-NONE").encode(),
            "unknown_reference", "payment_id"),
        bad("payments", "b-0010", h.refund("b-0010", "RF-1", amount="100000.00").encode(),
            "insufficient_credit", "amount"),
        bad("support", "b-0003", h.support_escalated("b-0003", "T-DONE").encode(),
            "invalid_state", "ticket_id"),
    ]
    # fmt: on
    rng = random.Random(3)
    main = [good(i.kind, i.key, i.value.decode(), i.applies) for i in workload.rest]
    main.append(Record("charges", "b-0007", future))
    for record in bad_records:
        main.insert(rng.randrange(len(main) + 1), record)
    return registrations, prerequisites, main


def test_bad_records_are_dead_lettered_with_their_bytes_and_good_ones_applied(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
) -> None:
    registrations, prerequisites, main = corpus()
    assert sum(1 for r in main if r.code) >= 15
    topics = make_ingest_topics(kafka_topics)
    for topic in (topics.charges, topics.deadletter):
        set_topic_config(kafka_bootstrap, topic, {"max.message.bytes": str(BIG)})
    database_url = fresh_pg_url()
    env = ledger_env(database_url, bootstrap=kafka_bootstrap, topics=topics)
    procs = Processes(tmp_path / "logs", env)
    producer = make_producer(kafka_bootstrap, max_request_size=BIG)
    probe = GroupProbe(kafka_bootstrap, topics.group, topics.ingest)
    store = EventStore(database_url)
    try:
        consumer = procs.start("consume", "--max-batch", "100")

        def send(records: list[Record]) -> list[Delivered]:
            return produce(producer, [(topics.of(r.kind), r.key, r.value) for r in records])

        send(registrations)
        wait_until(
            lambda: store.registered() == len(registrations),
            timeout=60, what="registrations", procs=procs, alive=[consumer],
        )  # fmt: skip
        send(prerequisites)
        delivered = send(main)
        wait_until(
            lambda: probe.lag() == 0,
            timeout=90, what="everything consumed", procs=procs, alive=[consumer],
        )  # fmt: skip
        consumer.terminate()
        assert consumer.wait(30) == 0, consumer.tail()

        letters = dead_letters(kafka_bootstrap, topics.deadletter)
        by_source = {(d["source_topic"], d["partition"], d["offset"]): d for d in letters}
        assert len(by_source) == len(letters), "a record was dead-lettered twice"
        problems = []
        expected_sources = set()
        for record, where in zip(main, delivered, strict=True):
            if record.code is None:
                continue
            source = (where.topic, where.partition, where.offset)
            expected_sources.add(source)
            letter = by_source.get(source)
            if letter is None:
                problems.append(f"{record.code} at {source}: not dead-lettered")
                continue
            problems += _compare(record, letter)
        unexpected = [by_source[s] for s in set(by_source) - expected_sources]
        assert not unexpected, f"good records dead-lettered: {unexpected[:3]}"
        assert not problems, "\n".join(problems)

        good_values = [r.value for r in [*registrations, *prerequisites, *main] if r.applies]
        assert_exactly_once(store.events(), [v for v in good_values if v is not None])
        future = [e for e in store.events() if e["data"].get("charge_id") == "CH-FUTURE"]
        assert [e["event_type"] for e in future] == ["ChargePosted"]
    finally:
        procs.kill_all()
        producer.close(timeout=10)
        probe.close()
        store.close()


def _compare(record: Record, letter: dict[str, Any]) -> list[str]:
    """What differs between a bad record and its dead letter (empty: nothing)."""
    label = f"{record.code} {(record.value or b'')[:60]!r}"
    found = []
    if letter["code"] != record.code:
        found.append(f"{label}: code {letter['code']!r} ({letter['message']})")
    if record.names and record.names.lower() not in letter["message"].lower():
        found.append(f"{label}: message {letter['message']!r} does not name {record.names!r}")
    raw = letter["raw"]
    original = record.value or b""
    try:
        text = original.decode("utf-8")
        expected_encoding = "utf-8"
    except UnicodeDecodeError:
        text, expected_encoding = base64.b64encode(original).decode(), "base64"
    if letter["raw_encoding"] != expected_encoding:
        found.append(f"{label}: raw_encoding {letter['raw_encoding']!r}")
    elif raw != text:
        found.append(f"{label}: raw differs from the original bytes ({len(raw)} chars)")
    if letter["key"] != record.key:
        found.append(f"{label}: key {letter['key']!r} instead of {record.key!r}")
    return found


def test_a_dead_letter_too_large_for_its_topic_is_cut_down_not_a_poison_pill(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
) -> None:
    """The dead-letter topic exists with the broker's default 1 MB limit (made by someone
    else): the >1 MiB record's letter keeps a prefix of its bytes, their size and sha256,
    and everything around it is still dead-lettered or applied."""
    topics = make_ingest_topics(kafka_topics)
    set_topic_config(kafka_bootstrap, topics.charges, {"max.message.bytes": str(BIG)})
    database_url = fresh_pg_url()
    procs = Processes(
        tmp_path / "logs", ledger_env(database_url, bootstrap=kafka_bootstrap, topics=topics)
    )
    producer = make_producer(kafka_bootstrap, max_request_size=BIG)
    probe = GroupProbe(kafka_bootstrap, topics.group, topics.ingest)
    store = EventStore(database_url)
    huge = _doc(h.charge("t-1", "CH-HUGE"), description="x" * 1_200_000)
    records = [
        good("customers", "t-1", h.customer_registered("t-1")),
        bad("charges", "t-1", huge, "too_large"),
        bad("charges", "t-1", b"{oops", "malformed_json"),
        *[good("charges", "t-1", h.charge("t-1", f"CH-{n}", amount="5.00")) for n in range(20)],
    ]
    try:
        delivered = produce(producer, [(topics.of(r.kind), r.key, r.value) for r in records])
        consumer = procs.start("consume")
        wait_until(
            lambda: probe.lag() == 0,
            timeout=60, what="everything consumed", procs=procs, alive=[consumer],
        )  # fmt: skip
        consumer.terminate()
        assert consumer.wait(30) == 0, consumer.tail()
        letters = {d["offset"]: d for d in dead_letters(kafka_bootstrap, topics.deadletter)}
        cut, whole = letters.pop(delivered[1].offset), letters.pop(delivered[2].offset)
        assert not letters
        assert cut["code"] == "too_large" and cut["raw_truncated"] is True
        assert cut["raw_size"] == len(huge)
        assert cut["raw_sha256"] == hashlib.sha256(huge).hexdigest()
        assert huge.decode().startswith(cut["raw"]) and 0 < len(cut["raw"]) < len(huge)
        assert (whole["code"], whole["raw"], whole.get("raw_truncated")) == (
            "malformed_json", "{oops", None,
        )  # fmt: skip
        assert procs.logged("consume.deadletter_truncated")
        assert_exactly_once(store.events(), [r.value for r in records if r.applies and r.value])
    finally:
        procs.kill_all()
        producer.close(timeout=10)
        probe.close()
        store.close()
