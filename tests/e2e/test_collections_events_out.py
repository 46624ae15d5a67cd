"""Issue 6, end to end: suspensions and reinstatements reach `ledger.events` for downstream
provisioning (SPEC §4 "Collections", §5).

On real PostgreSQL and Kafka, as an operator runs it: `ledger ingest` of a customer's January
(two subscriptions), `ledger invoice run`, `ledger collections run` at 30 days past due
(suspension), a payment (reinstatement, by the payment itself), a reversal of that payment and
the next day's `ledger collections run` (suspended again). Then `ledger publish` runs as a
process, and a plain consumer of the events topic finds SubscriptionSuspended and
SubscriptionReinstated in stream order, keyed by customer, in the SPEC §5 shape, exactly as
stored; a customer who paid on time has none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import helpers as h
from tests.e2e.procs import (
    Delivered,
    EventStore,
    Processes,
    ledger_env,
    read_topic,
    run_ledger,
    wait_until,
)

pytestmark = pytest.mark.e2e

LATE, ON_TIME = "acme", "globex"
SUBSCRIPTIONS = [f"sub-{LATE}-1", f"sub-{LATE}-2"]
INVOICE = f"INV-{LATE}-2025-01"  # invoiced 2025-02-01, 14 days' terms: due 2025-02-15
ENVELOPE = {
    "event_id", "event_type", "schema_version", "customer_id", "stream_position",
    "global_position", "occurred_at", "recorded_at", "data",
}  # fmt: skip


def at(day: str) -> str:
    return f"{day}T10:00:00Z"


def ingest(tmp_path: Path, env: dict[str, str], name: str, *lines: str) -> str:
    path = tmp_path / f"{name}.jsonl"
    path.write_text(h.jsonl(lines))
    done = run_ledger("ingest", str(path), env=env, cwd=tmp_path)
    return done.stdout.decode()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path / "logs", {})
    yield processes
    processes.kill_all()


def test_suspension_and_reinstatement_reach_the_events_topic_in_stream_order(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
    procs: Processes,
) -> None:
    database_url = fresh_pg_url()
    events_topic = kafka_topics("events")
    env = ledger_env(database_url, bootstrap=kafka_bootstrap)
    env["LEDGER_TOPIC_EVENTS"] = events_topic
    procs.env = env

    # The history, as an operator makes it.
    out = ingest(
        tmp_path, env, "january",
        h.customer_registered(LATE, payment_terms_days=14, occurred_at=at("2025-01-02")),
        h.customer_registered(ON_TIME, payment_terms_days=14, occurred_at=at("2025-01-02")),
        h.charge(LATE, "CH-1", "60.00", subscription_id=SUBSCRIPTIONS[0],
                 occurred_at=at("2025-01-15")),
        h.charge(LATE, "CH-2", "40.00", subscription_id=SUBSCRIPTIONS[1],
                 occurred_at=at("2025-01-15")),
        h.charge(ON_TIME, "CH-3", "50.00", occurred_at=at("2025-01-15")),
    )  # fmt: skip
    assert out.startswith("applied 5,"), out
    run_ledger("invoice", "run", "--period", "2025-01", "--date", "2025-02-01", env=env,
               cwd=tmp_path)  # fmt: skip
    ingest(
        tmp_path, env, "on-time", h.payment(ON_TIME, "P-G", "50.00", occurred_at=at("2025-02-10"))
    )
    done = run_ledger("collections", "run", "--as-of", "2025-03-17", env=env, cwd=tmp_path)
    assert done.stdout.decode().startswith("fired 5 events as of 2025-03-17"), done.stdout
    ingest(tmp_path, env, "payment", h.payment(LATE, "P-1", "100.00", occurred_at=at("2025-03-20")))
    ingest(tmp_path, env, "reversal", h.payment_reversed(LATE, "P-1", occurred_at=at("2025-03-25")))
    done = run_ledger("collections", "run", "--as-of", "2025-03-26", env=env, cwd=tmp_path)
    assert done.stdout.decode().startswith("fired 3 events as of 2025-03-26"), done.stdout

    store = EventStore(database_url)
    try:
        stored = store.events()
        head = store.head()
    finally:
        store.close()
    assert len(stored) == head

    # Events out.
    publisher = procs.start("publish", name="publish")

    def all_published() -> list[Delivered] | None:
        found = read_topic(kafka_bootstrap, events_topic)
        return found if len(found) >= head else None

    records = wait_until(
        all_published, timeout=90, what=f"{head} events on {events_topic}", procs=procs,
        alive=[publisher],
    )  # fmt: skip
    publisher.terminate()
    assert publisher.wait(timeout=30) == 0, publisher.tail()
    assert len(records) == head  # each event once

    published = [json.loads(r.value or b"") for r in records]
    for record, event in zip(records, published, strict=True):
        assert record.key == event["customer_id"]  # keyed by customer: one partition each
        assert set(event) >= ENVELOPE
    by_customer: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for record, event in zip(records, published, strict=True):
        by_customer.setdefault(event["customer_id"], []).append(
            (record.partition, record.offset, event)
        )

    late = [e for _, _, e in sorted(by_customer[LATE], key=lambda t: (t[0], t[1]))]
    assert len({p for p, _, _ in by_customer[LATE]}) == 1
    # In stream order on the topic, gap-free, and exactly what the store holds.
    assert [e["stream_position"] for e in late] == list(range(1, len(late) + 1))
    assert [e["global_position"] for e in late] == sorted(e["global_position"] for e in late)
    assert late == [e for e in stored if e["customer_id"] == LATE]

    provisioning = [
        (e["event_type"], e["data"]["subscription_id"])
        for e in late
        if e["event_type"] in ("SubscriptionSuspended", "SubscriptionReinstated")
    ]
    assert provisioning == (
        [("SubscriptionSuspended", s) for s in SUBSCRIPTIONS]
        + [("SubscriptionReinstated", s) for s in SUBSCRIPTIONS]
        + [("SubscriptionSuspended", s) for s in SUBSCRIPTIONS]
    )
    types = [e["event_type"] for e in late]
    first_suspension = types.index("SubscriptionSuspended")
    assert types[first_suspension - 1] == "DunningNoticeSent"  # the suspend step caused it
    # The payment itself reinstated: right after its PaymentReceived and PaymentApplied.
    reinstated_at = types.index("SubscriptionReinstated")
    assert types[reinstated_at - 2 : reinstated_at] == ["PaymentReceived", "PaymentApplied"]

    suspensions = [e for e in late if e["event_type"] == "SubscriptionSuspended"]
    for event in suspensions:
        assert event["schema_version"] == 1
        assert {"subscription_id", "policy", "step", "invoice_id"} <= set(event["data"])
        assert (event["data"]["policy"], event["data"]["step"], event["data"]["invoice_id"]) == (
            "standard", 2, INVOICE,
        )  # fmt: skip
    assert [e["occurred_at"][:10] for e in suspensions] == ["2025-03-17"] * 2 + ["2025-03-26"] * 2
    reinstatements = [e for e in late if e["event_type"] == "SubscriptionReinstated"]
    assert [e["data"]["rule"] for e in reinstatements] == ["paid_in_full"] * 2
    assert [e["occurred_at"] for e in reinstatements] == ["2025-03-20T10:00:00+00:00"] * 2

    on_time_types = {e["event_type"] for _, _, e in by_customer[ON_TIME]}
    assert not on_time_types & {"SubscriptionSuspended", "SubscriptionReinstated",
                                "DunningNoticeSent"}  # fmt: skip
