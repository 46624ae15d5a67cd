"""End-to-end plumbing: `ledger` CLI processes run as a user runs them, per-test Kafka topic
sets, producing keyed messages, consumer-group progress, reading the dead-letter topic, the
stored events, and the exactly-once bookkeeping of a generated workload.

Every process gets its own environment (LEDGER_* only from here, never from the caller's
shell), JSON logs on stderr captured to a file under the test's tmp_path (a new file per
start, so "since this start" is simply "in this file"), and is stopped with SIGKILL (crash)
or SIGTERM (graceful). Every wait has a timeout and fails with the tail of the logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.structs import TopicPartition

from tests import helpers as h

T = TypeVar("T")

LEDGER_BIN = str(Path(sys.executable).with_name("ledger"))
TOPIC_KINDS = ("customers", "charges", "payments", "support")

# Which ingest topic carries each message type. A customer's messages that depend on each
# other share a topic (same key -> same partition -> ordered): a reversal follows its payment
# on `payments`, interactions follow their ticket on `support`. Registrations are on
# `customers`: the tests produce (and wait for) them before anything else of the customer.
TOPIC_OF_TYPE = {
    "customer_registered": "customers",
    "customer_updated": "customers",
    "charge": "charges",
    "payment": "payments",
    "payment_reversed": "payments",
    "credit_note": "payments",
    "refund": "payments",
    "support_ticket_opened": "support",
    "support_interaction": "support",
    "support_escalated": "support",
    "support_ticket_resolved": "support",
}


# ------------------------------------------------------------------------------ topics, env


@dataclass(frozen=True)
class IngestTopics:
    """One test's own topic names and consumer group (unique per test)."""

    customers: str
    charges: str
    payments: str
    support: str
    deadletter: str
    events: str
    group: str

    def of(self, kind: str) -> str:
        return str(getattr(self, kind))

    @property
    def ingest(self) -> list[str]:
        return [self.of(kind) for kind in TOPIC_KINDS]

    def env(self) -> dict[str, str]:
        return {
            "LEDGER_TOPIC_CUSTOMERS": self.customers,
            "LEDGER_TOPIC_CHARGES": self.charges,
            "LEDGER_TOPIC_PAYMENTS": self.payments,
            "LEDGER_TOPIC_SUPPORT": self.support,
            "LEDGER_TOPIC_DEADLETTER": self.deadletter,
            "LEDGER_TOPIC_EVENTS": self.events,
            "LEDGER_CONSUMER_GROUP_INGEST": self.group,
        }


def make_ingest_topics(kafka_topics: Callable[..., str], *, partitions: int = 4) -> IngestTopics:
    names = {kind: kafka_topics(kind, partitions) for kind in TOPIC_KINDS}
    deadletter = kafka_topics("deadletter", partitions)
    events = kafka_topics("events", partitions)
    return IngestTopics(
        **names, deadletter=deadletter, events=events, group=f"{deadletter}.ingest-group"
    )


def set_topic_config(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Change a topic's config (e.g. max.message.bytes) on the broker."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        admin.close()


def ledger_env(
    database_url: str, *, bootstrap: str | None = None, topics: IngestTopics | None = None
) -> dict[str, str]:
    """The environment of a `ledger` process: the caller's, minus every LEDGER_* setting,
    plus these. Without `bootstrap` the process is embedded (no Kafka)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        LEDGER_DATABASE_URL=database_url,
        LEDGER_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    if bootstrap:
        env["LEDGER_KAFKA_BOOTSTRAP"] = bootstrap
    if topics is not None:
        env.update(topics.env())
    return env


# -------------------------------------------------------------------------------- processes


class LedgerProcess:
    """One running `ledger` command; stderr (JSON logs) and stdout go to files."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log_dir: Path, name: str):
        self.args = list(args)
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.out_path = log_dir / f"{name}.out"
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.popen = subprocess.Popen(
                [LEDGER_BIN, *self.args],
                env=env,
                cwd=log_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to commit anything."""
        if self.running:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM: the graceful stop a process manager sends."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"{self.name} (pid {self.pid}) did not exit within {timeout}s\n{self.tail()}",
                pytrace=False,
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (other lines, e.g. a traceback, are skipped)."""
        found = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.log_events() if e.get("event") == event]

    def tail(self, lines: int = 25) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        text = self.log_text().splitlines()[-lines:]
        return f"--- {self.name} ({state}) {self.log_path}:\n" + "\n".join(text)


class Processes:
    """The `ledger` processes a test started: named starts, restarts, cleanup, log tails."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[LedgerProcess] = []

    def start(self, *args: str, name: str = "consume") -> LedgerProcess:
        count = sum(1 for p in self.started if p.name.rsplit("-", 1)[0] == name)
        proc = LedgerProcess(args, self.env, self.log_dir, f"{name}-{count + 1}")
        self.started.append(proc)
        return proc

    def tails(self, lines: int = 25) -> str:
        return "\n".join(p.tail(lines) for p in self.started[-4:])

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.running:
                proc.kill()

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for p in self.started for e in p.logged(event)]


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    procs: Processes | None = None,
    alive: Sequence[LedgerProcess] = (),
    interval: float = 0.25,
) -> T:
    """Poll `condition` until it returns something truthy (returned). Fails after `timeout`,
    or as soon as a process in `alive` exits, with the tail of the process logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        dead = [p for p in alive if not p.running]
        if dead or time.monotonic() > deadline:
            why = f"{dead[0].name} exited ({dead[0].returncode})" if dead else f"{timeout}s passed"
            logs = procs.tails() if procs else "\n".join(p.tail() for p in alive)
            pytest.fail(f"waiting for {what}: {why}\n{logs}", pytrace=False)
        time.sleep(interval)


def run_ledger(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a `ledger` command to completion; fail with its output unless it exits 0."""
    done = subprocess.run(
        [LEDGER_BIN, *args], env=env, cwd=cwd, input=input, capture_output=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(
            f"`ledger {' '.join(args)}` exited {done.returncode}\n"
            f"stdout: {done.stdout.decode(errors='replace')[-2000:]}\n"
            f"stderr: {done.stderr.decode(errors='replace')[-3000:]}",
            pytrace=False,
        )
    return done


def show_json(view: str, *, database_url: str, cwd: Path) -> list[dict[str, Any]]:
    """`ledger show VIEW --json` folded from the event store (no Kafka in the environment:
    the in-process projections, not the rows a `ledger project` would maintain)."""
    done = run_ledger("show", view, "--json", env=ledger_env(database_url), cwd=cwd)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def reference_views(
    values: Iterable[bytes], tmp_path: Path, views: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """`ledger ingest` of the same messages, in the same order, into a fresh SQLite store,
    and its views: what the Kafka pipeline must end up equal to."""
    work = tmp_path / "reference"
    work.mkdir(exist_ok=True)
    jsonl = work / "messages.jsonl"
    jsonl.write_bytes(b"".join(v + b"\n" for v in values))
    url = f"sqlite:///{work / 'reference.db'}"
    run_ledger("ingest", str(jsonl), env=ledger_env(url), cwd=work, timeout=180)
    return {view: show_json(view, database_url=url, cwd=work) for view in views}


# ------------------------------------------------------------------------------------ Kafka


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 1,  # keep per-key order on retries
        "retries": 5,
    }
    config.update(overrides)
    return KafkaProducer(**config)


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None


def produce(
    producer: KafkaProducer,
    records: Iterable[tuple[str, str | None, bytes | None]],
    *,
    chunk: int = 0,
    pause: float = 0.0,
    stop: Callable[[], bool] = lambda: False,
) -> list[Delivered]:
    """Send (topic, key, value) records in order, wait for every ack; returns where each one
    landed. With `chunk`, flushes and sleeps `pause` seconds every `chunk` records."""
    futures = []
    for n, (topic, key, value) in enumerate(records, start=1):
        future = producer.send(topic, key=None if key is None else key.encode(), value=value)
        futures.append((key, value, future))
        if chunk and n % chunk == 0:
            producer.flush()
            if stop():
                break
            time.sleep(pause)
    producer.flush()
    delivered = []
    for key, value, future in futures:
        meta = future.get(timeout=30)
        delivered.append(Delivered(meta.topic, meta.partition, meta.offset, key, value))
    return delivered


class GroupProbe:
    """How far a consumer group has committed, compared with the ends of its topics."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        self.partitions = [
            TopicPartition(topic, p) for topic in topics for p in sorted(self._partitions_of(topic))
        ]

    def _partitions_of(self, topic: str) -> set[int]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = self.consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            time.sleep(0.2)
        raise AssertionError(f"topic {topic} has no partitions")

    def ends(self) -> dict[TopicPartition, int]:
        return dict(self.consumer.end_offsets(self.partitions))

    def committed(self) -> dict[TopicPartition, int]:
        found = {}
        for tp in self.partitions:
            offset = self.consumer.committed(tp)
            found[tp] = offset if offset is not None and offset >= 0 else 0
        return found

    def lag(self) -> int:
        ends, committed = self.ends(), self.committed()
        return sum(max(ends[tp] - committed[tp], 0) for tp in self.partitions)

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Delivered]:
    """Every record of a topic, start to current end, with no consumer group."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        found_partitions = consumer.partitions_for_topic(topic)
        while not found_partitions and time.monotonic() < deadline:
            time.sleep(0.2)  # metadata not there yet
            found_partitions = consumer.partitions_for_topic(topic)
        if not found_partitions:
            raise AssertionError(f"topic {topic} has no partitions")
        partitions = [TopicPartition(topic, p) for p in sorted(found_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[Delivered] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout}s")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    key = r.key.decode("utf-8", "replace") if r.key is not None else None
                    found.append(Delivered(tp.topic, tp.partition, r.offset, key, r.value))
        return found
    finally:
        consumer.close(autocommit=False)


def dead_letters(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(d.value) for d in read_topic(bootstrap, topic) if d.value is not None]


# ------------------------------------------------------------------------------ event store


class EventStore:
    """The event store of a database, read through the ledger application."""

    def __init__(self, database_url: str) -> None:
        from ledger.bootstrap import build_app
        from ledger.config import Settings

        self.app = build_app(Settings(database_url=database_url))

    def events(self) -> list[dict[str, Any]]:
        """Every stored event (SPEC §5 shape plus `message_id`), in global order."""
        from ledger.app.views import published_events

        return list(published_events(self.app))

    def registered(self) -> int:
        return len(self.app.customer_ids())

    def head(self) -> int:
        return self.app.head_position()

    def close(self) -> None:
        self.app.close()


# The one event a message that applies causes, and what identifies it on the customer's
# stream (the business id, or the message id for facts without one).
EFFECT_OF_TYPE = {
    "customer_registered": ("CustomerRegistered", "customer_id"),
    "customer_updated": ("CustomerUpdated", None),
    "charge": ("ChargePosted", "charge_id"),
    "payment": ("PaymentReceived", "payment_id"),
    "payment_reversed": ("PaymentReversed", "payment_id"),
    "credit_note": ("CreditNoteIssued", "credit_id"),
    "refund": ("RefundIssued", "refund_id"),
    "support_ticket_opened": ("SupportTicketOpened", "ticket_id"),
    "support_interaction": ("SupportInteractionLogged", None),
    "support_escalated": ("SupportTicketEscalated", None),
    "support_ticket_resolved": ("SupportTicketResolved", "ticket_id"),
}
EFFECT_EVENTS = {event for event, _ in EFFECT_OF_TYPE.values()}
Effect = tuple[str, str, str]  # event type, customer id, business id (or message id)


def effect_of_message(value: bytes | str) -> Effect:
    doc = json.loads(value)
    event, id_field = EFFECT_OF_TYPE[doc["type"]]
    return event, doc["customer_id"], str(doc[id_field] if id_field else doc["message_id"])


def effect_of_event(event: dict[str, Any]) -> Effect:
    kind = event["event_type"]
    id_field = next(f for e, f in EFFECT_OF_TYPE.values() if e == kind)
    data = event["data"]
    business = data[id_field] if id_field and id_field in data else event["message_id"]
    if kind == "CustomerRegistered":
        business = event["customer_id"]
    return kind, event["customer_id"], str(business)


def assert_exactly_once(events: list[dict[str, Any]], applying: Iterable[bytes | str]) -> None:
    """Every message that should apply has exactly one effect, nothing else has any: each
    business id in exactly one event of its type, each message id on exactly one event."""
    applying = list(applying)
    expected = Counter(effect_of_message(v) for v in applying)
    assert set(expected.values()) <= {1}, "the workload itself repeats a fact"
    actual = Counter(effect_of_event(e) for e in events if e["event_type"] in EFFECT_EVENTS)
    missing = sorted((expected - actual).elements())
    extra = sorted((actual - expected).elements())
    assert not missing and not extra, (
        f"{len(missing)} effects missing (first: {missing[:5]}), "
        f"{len(extra)} extra or repeated (first: {extra[:5]}); "
        f"{len(events)} events stored, {len(expected)} effects expected"
    )
    by_message = Counter(e["message_id"] for e in events if e["message_id"] is not None)
    repeated = [m for m, n in by_message.items() if n > 1]
    assert not repeated, f"message ids on more than one event: {repeated[:5]}"
    expected_ids = {json.loads(v)["message_id"] for v in applying}
    assert set(by_message) == expected_ids


# --------------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Item:
    """One message to produce: where it goes, its bytes, and whether it has an effect (the
    first occurrence of a new fact) or none (a re-send, by message id or by business id)."""

    kind: str
    key: str
    value: bytes
    applies: bool

    @property
    def message_id(self) -> str:
        return str(json.loads(self.value)["message_id"])


@dataclass
class _Customer:
    customer_id: str
    payments: list[str] = field(default_factory=list)
    tickets: dict[str, str] = field(default_factory=dict)


@dataclass
class Workload:
    registrations: list[Item]
    rest: list[Item]

    @property
    def items(self) -> list[Item]:
        return self.registrations + self.rest

    def records(
        self, topics: IngestTopics, items: Sequence[Item]
    ) -> Iterator[tuple[str, str, bytes]]:
        for item in items:
            yield topics.of(item.kind), item.key, item.value

    def applying(self) -> list[bytes]:
        return [i.value for i in self.items if i.applies]

    def counts(self) -> Counter[str]:
        return Counter(json.loads(i.value)["type"] for i in self.items)


def mixed_workload(seed: int, customers: int, total: int, prefix: str = "c") -> Workload:
    """`customers` registrations, then `total - customers` messages of every kind: charges
    (some cancel_refund), payments, reversals of earlier payments, credit notes, support
    tickets and their interactions/escalations/resolutions, customer updates, and re-sends:
    exact copies (same message id) and the same fact under a new message id."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
    people = [_Customer(f"{prefix}-{n:04d}") for n in range(customers)]
    registrations = [
        Item("customers", c.customer_id, h.customer_registered(c.customer_id).encode(), True)
        for c in people
    ]
    rest: list[Item] = []
    resendable: list[Item] = []
    choices = ["charge"] * 38 + ["payment"] * 16 + ["reversal"] * 5 + ["credit"] * 6 + [
        "ticket"] * 6 + ["interaction"] * 9 + ["escalate"] * 2 + ["resolve"] * 3 + [
        "update"] * 1 + ["resend"] * 10 + ["same_fact"] * 4  # fmt: skip

    def add(kind: str, customer_id: str, text: str, applies: bool = True) -> None:
        item = Item(kind, customer_id, text.encode(), applies)
        rest.append(item)
        if applies:
            resendable.append(item)

    def money(low: int = 100, high: int = 250_000) -> str:
        return f"{rng.randint(low, high) / 100:.2f}"

    for n in range(total - customers):
        c = rng.choice(people)
        cid = c.customer_id
        at = (start + timedelta(minutes=7 * n)).isoformat().replace("+00:00", "Z")
        what = rng.choice(choices)
        if what == "reversal" and not c.payments:
            what = "payment"
        open_tickets = [t for t, s in c.tickets.items() if s != "resolved"]
        if what in ("interaction", "escalate", "resolve") and not open_tickets:
            what = "ticket"
        if what in ("resend", "same_fact") and not resendable:
            what = "charge"
        if what == "charge":
            if rng.random() < 0.05:
                text = h.charge(cid, f"CH-{n}", amount="-" + money(100, 5000),
                                charge_type="cancel_refund", occurred_at=at)  # fmt: skip
            else:
                period = rng.choice(["2024-12", "2025-01", "2025-02"])
                text = h.charge(cid, f"CH-{n}", amount=money(), billing_period=period,
                                charge_type=rng.choice(["new", "renew", "cycle", "usage"]),
                                occurred_at=at)  # fmt: skip
            add("charges", cid, text)
        elif what == "payment":
            add("payments", cid, h.payment(cid, f"PAY-{n}", amount=money(), occurred_at=at))
            c.payments.append(f"PAY-{n}")
        elif what == "reversal":
            payment_id = c.payments.pop(rng.randrange(len(c.payments)))
            reason = rng.choice(["chargeback", "returned", "error"])
            add("payments", cid, h.payment_reversed(cid, payment_id, reason=reason,
                                                    occurred_at=at))  # fmt: skip
        elif what == "credit":
            add("payments", cid, h.credit_note(cid, f"CN-{n}", amount=money(100, 20_000),
                                               occurred_at=at))  # fmt: skip
        elif what == "ticket":
            add("support", cid, h.support_ticket_opened(
                cid, f"T-{n}", severity=rng.choice("abc"),
                category=rng.choice(["billing", "technical", "commercial", "other"]),
                occurred_at=at))  # fmt: skip
            c.tickets[f"T-{n}"] = "open"
        elif what == "interaction":
            ticket = rng.choice(open_tickets)
            add("support", cid, h.support_interaction(
                cid, ticket, tag=str(n), minutes=rng.randint(0, 90),
                billable=rng.random() < 0.3, occurred_at=at))  # fmt: skip
        elif what == "escalate":
            ticket = rng.choice(open_tickets)
            add("support", cid, h.support_escalated(cid, ticket, tag=str(n), occurred_at=at))
            c.tickets[ticket] = "escalated"
        elif what == "resolve":
            ticket = rng.choice(open_tickets)
            add("support", cid, h.support_ticket_resolved(cid, ticket, occurred_at=at))
            c.tickets[ticket] = "resolved"
        elif what == "update":
            add("customers", cid, h.customer_updated(
                cid, tag=str(n), payment_terms_days=rng.choice([14, 30, 45, 60]),
                occurred_at=at))  # fmt: skip
        elif what == "resend":
            original = rng.choice(resendable + registrations[:20])
            rest.append(Item(original.kind, original.key, original.value, False))
        else:  # the same fact again under a new message id: a duplicate by business id
            facts = [i for i in resendable[-400:] if _has_business_id(i)]
            if not facts:
                continue
            original = rng.choice(facts)
            doc = json.loads(original.value)
            doc["message_id"] = f"{doc['message_id']}-again-{n}"
            rest.append(Item(original.kind, original.key, json.dumps(doc).encode(), False))
    return Workload(registrations, rest)


def _has_business_id(item: Item) -> bool:
    kind = json.loads(item.value)["type"]
    return kind in ("charge", "payment", "credit_note", "support_ticket_opened")


# ------------------------------------------------------------------------------- pipeline

VIEWS = ("balances", "trial-balance", "support")
CONSUME = ("consume", "--max-batch", "500")


class Run:
    """One test's pipeline: topics, a fresh PostgreSQL store, consumers, producer, probes."""

    def __init__(
        self,
        tmp_path: Path,
        kafka_bootstrap: str,
        kafka_topics: Callable[..., str],
        fresh_pg_url: Callable[[], str],
    ) -> None:
        self.tmp_path = tmp_path
        self.bootstrap = kafka_bootstrap
        self.topics: IngestTopics = make_ingest_topics(kafka_topics)
        self.database_url = fresh_pg_url()
        self.procs = Processes(
            tmp_path / "logs", ledger_env(self.database_url, bootstrap=kafka_bootstrap,
                                          topics=self.topics)
        )  # fmt: skip
        self.producer = make_producer(kafka_bootstrap)
        self.probe = GroupProbe(kafka_bootstrap, self.topics.group, self.topics.ingest)
        self.store = EventStore(self.database_url)
        self.sender: threading.Thread | None = None
        self.sent: list[Delivered] = []
        self.send_error: BaseException | None = None

    def close(self) -> None:
        self.procs.kill_all()
        self.producer.close(timeout=10)
        self.probe.close()
        self.store.close()

    def register(self, workload: Workload, alive: list[LedgerProcess]) -> None:
        """Registrations first, consumed before anything else of the customers is sent."""
        self.sent += produce(self.producer, workload.records(self.topics, workload.registrations))
        want = len(workload.registrations)
        wait_until(
            lambda: self.store.registered() == want,
            timeout=90, what=f"{want} customers registered", procs=self.procs, alive=alive,
        )  # fmt: skip

    def send_in_background(self, workload: Workload, chunk: int, pause: float) -> None:
        def send() -> None:
            try:
                self.sent += produce(
                    self.producer, workload.records(self.topics, workload.rest),
                    chunk=chunk, pause=pause,
                )  # fmt: skip
            except BaseException as error:  # reported by wait_sent
                self.send_error = error

        self.sender = threading.Thread(target=send, name="producer", daemon=True)
        self.sender.start()

    def wait_sent(self, timeout: float = 120) -> None:
        assert self.sender is not None
        self.sender.join(timeout)
        assert not self.sender.is_alive(), f"the producer did not finish in {timeout}s"
        assert self.send_error is None, f"the producer failed: {self.send_error!r}"

    def wait_drained(self, alive: list[LedgerProcess], timeout: float = 150) -> None:
        """Until the group's committed offsets reach the end of every ingest partition."""
        wait_until(
            lambda: self.probe.lag() == 0,
            timeout=timeout, what="committed offsets at the end of every partition",
            procs=self.procs, alive=alive,
        )  # fmt: skip

    def stop(self, consumers: list[LedgerProcess]) -> None:
        # A graceful stop is promised once the consumer runs: a SIGTERM while it is still
        # importing (one just restarted, on a busy machine) ends it -15 before its handler.
        for proc in consumers:
            wait_until(
                lambda p=proc: bool(p.logged("consume.started")) or not p.running,
                timeout=60, what="consume started", procs=self.procs, alive=[],
            )  # fmt: skip
        for proc in consumers:
            proc.terminate()
        for proc in consumers:
            assert proc.wait(60) == 0, proc.tail()

    def assert_exactly_once_and_views(self, workload: Workload, reference: Any) -> None:
        assert_exactly_once(self.store.events(), workload.applying())
        letters = dead_letters(self.bootstrap, self.topics.deadletter)
        assert letters == [], f"{len(letters)} dead letters, first: {letters[:3]}"
        views = reference.result()
        for view in VIEWS:
            got = show_json(view, database_url=self.database_url, cwd=self.tmp_path)
            assert got == views[view], f"`ledger show {view}` differs from the ingest reference"


class Background:
    """Compute something in a thread (the SQLite reference while Kafka runs)."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = work()
            except BaseException as error:
                self._error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 240) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the reference ingest did not finish"
        if self._error is not None:
            raise self._error
        return self._value


def reference_of(workload: Workload, tmp_path: Path) -> Background:
    values = [item.value for item in workload.items]
    return Background(lambda: reference_views(values, tmp_path, VIEWS))
