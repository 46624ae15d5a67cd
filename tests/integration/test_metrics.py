"""`/metrics` moves when the pipeline works: messages consumed from real Kafka into
PostgreSQL, events published, projections applied — scraped through the API each time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from consumers.ingest import IngestConsumer
from consumers.kafka_support import StopFlag
from consumers.project import Projector
from consumers.publish import Publisher
from ledger.api import create_app
from ledger.app.views import PROJECTIONS
from ledger.bootstrap import build_app
from ledger.config import Settings
from tests.helpers import charge, customer_registered, payment

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


class Running:
    """A pipeline loop in a thread, stopped (and joined) at the end of the test."""

    def __init__(self, loop: Callable[[], object], stop: StopFlag) -> None:
        self.stop = stop
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def pipeline_settings(
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    tmp_path: Path,
) -> Settings:
    unique = uuid.uuid4().hex[:8]
    return Settings(
        database_url=fresh_pg_url(),
        kafka_bootstrap=kafka_bootstrap,
        api_tokens_file=tmp_path / "tokens.toml",
        topic_customers=kafka_topics("customers"),
        topic_charges=kafka_topics("charges"),
        topic_payments=kafka_topics("payments"),
        topic_support=kafka_topics("support"),
        topic_deadletter=kafka_topics("deadletter"),
        topic_events=kafka_topics("events"),
        consumer_group_ingest=f"metrics-ingest-{unique}",
        consumer_group_project=f"metrics-project-{unique}",
    )


@pytest.fixture
def running() -> Iterator[list[Running]]:
    loops: list[Running] = []
    yield loops
    for loop in loops:
        loop.close()


def produce(settings: Settings, records: list[tuple[str, str, bytes]]) -> None:
    assert settings.kafka_bootstrap
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        for topic, key, body in records:
            producer.send(topic, key=key.encode(), value=body)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def test_metrics_move_as_messages_are_consumed_published_and_projected(
    pipeline_settings: Settings, running: list[Running]
) -> None:
    settings = pipeline_settings
    ledger = build_app(settings)
    client = TestClient(create_app(settings, ledger))
    before = scrape(client)
    applied0 = value(before, "ledger_messages_total", outcome="applied")
    dead0 = value(before, "ledger_messages_total", outcome="deadlettered")
    published0 = value(before, "ledger_events_published_total")
    assert value(before, "ledger_event_log_head") == 0
    assert value(before, "ledger_api_store_up") == 1

    def consumed(applied: int, dead: int) -> Callable[[], bool]:
        def check() -> bool:
            now = scrape(client)
            return (value(now, "ledger_messages_total", outcome="applied") - applied0 >= applied
                    and value(now, "ledger_messages_total", outcome="deadlettered") - dead0
                    >= dead)  # fmt: skip

        return check

    stop = StopFlag()
    running.append(Running(IngestConsumer(ledger, settings, stop, max_batch=50).run, stop))
    # Topics are not ordered with each other: the customers exist before their charges come.
    produce(settings, [
        (settings.topic_customers, "m1", customer_registered("m1").encode()),
        (settings.topic_customers, "m2", customer_registered("m2").encode()),
    ])  # fmt: skip
    wait_for(consumed(2, 0), "the registrations to be consumed")
    produce(settings, [
        (settings.topic_charges, "m1", charge("m1", "CH-1", "10.00").encode()),
        (settings.topic_payments, "m2", payment("m2", "PAY-1", "5.00").encode()),
        (settings.topic_charges, "m1", b"{not json"),
    ])  # fmt: skip
    wait_for(consumed(4, 1), "the ingest counters")
    after_ingest = scrape(client)
    head = ledger.head_position()
    assert head >= 4
    assert value(after_ingest, "ledger_messages_total", outcome="applied") - applied0 == 4
    assert value(after_ingest, "ledger_messages_total", outcome="deadlettered") - dead0 == 1
    assert value(after_ingest, "ledger_event_log_head") == head
    for name in PROJECTIONS:  # nothing projected yet: the whole log is lag
        assert value(after_ingest, "ledger_projection_position", projection=name) == 0
        assert value(after_ingest, "ledger_projection_lag_events", projection=name) == head

    publisher = Publisher(ledger, settings, StopFlag())
    try:
        sent = publisher.publish_once()
    finally:
        publisher.producer.close(timeout=10)
    assert sent == head
    after_publish = scrape(client)
    assert value(after_publish, "ledger_events_published_total") - published0 == head
    assert value(after_publish, "ledger_publish_position") == head

    stop = StopFlag()
    running.append(Running(Projector(settings, stop, max_batch=100).run, stop))

    def projected() -> bool:
        now = scrape(client)
        return all(value(now, "ledger_projection_lag_events", projection=name) == 0
                   for name in PROJECTIONS)  # fmt: skip

    wait_for(projected, "the projections to catch up")
    final = scrape(client)
    for name in PROJECTIONS:
        assert value(final, "ledger_projection_position", projection=name) == head
    route = "/metrics"
    assert value(final, "ledger_api_request_seconds_count", route=route) >= 3
