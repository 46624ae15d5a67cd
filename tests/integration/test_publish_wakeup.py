"""`ledger publish` waits for new events on PostgreSQL's LISTEN/NOTIFY, not by polling: an
idle publisher sends a newly committed event at once, and still stops promptly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers.kafka_support import StopFlag
from consumers.publish import Publisher
from ledger.bootstrap import build_app
from ledger.config import Settings
from tests.helpers import charge, customer_registered, msgs

pytestmark = pytest.mark.integration

POLL_FALLBACK = 120.0  # the publisher's longest wait: far longer than any wait below


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_idle_publisher_wakes_when_events_are_committed(
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=fresh_pg_url(), kafka_bootstrap=kafka_bootstrap,
                        topic_events=kafka_topics("events"),
                        api_tokens_file=tmp_path / "tokens.toml")  # fmt: skip
    ledger = build_app(settings)
    ledger.handle_batch(msgs([customer_registered("a")]))
    stop = StopFlag()
    publisher = Publisher(ledger, settings, stop, idle_wait=POLL_FALLBACK)
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: publisher.published == 1, 30)
        for n in range(1, 4):  # idle each time: only the NOTIFY can wake it this soon
            time.sleep(0.3)
            ledger.handle_batch(msgs([charge("a", f"CH-{n}", "1.00")]))
            assert wait_for(lambda n=n: publisher.published == 1 + n, 20), n
    finally:
        stopped = time.monotonic()
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - stopped < 10  # not the fallback wait


def test_an_event_past_the_brokers_default_record_size_is_published(
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    tmp_path: Path,
) -> None:
    """An invoice lists its charges: 12,000 of them make an `InvoiceIssued` of ~1.3 MB, past
    the 1 MB a topic made with the broker's defaults takes (the field fault: the publisher
    stopped at that event for good). The topic is made to take it, and it arrives whole."""
    import json
    from datetime import date

    from tests.e2e.procs import read_topic

    topic = kafka_topics("events")  # made with the broker's defaults
    settings = Settings(database_url=fresh_pg_url(), kafka_bootstrap=kafka_bootstrap,
                        topic_events=topic, api_tokens_file=tmp_path / "tokens.toml")  # fmt: skip
    ledger = build_app(settings)
    ledger.handle_batch(msgs([customer_registered("big")]))
    charge_ids = [f"CH-{n:06d}-" + "x" * 90 for n in range(12_000)]
    for start in range(0, len(charge_ids), 2000):
        ledger.handle_batch(
            msgs([charge("big", c, "1.00") for c in charge_ids[start : start + 2000]])
        )
    assert ledger.run_invoices("2025-01", date(2025, 2, 1))
    stop = StopFlag()
    publisher = Publisher(ledger, settings, stop)
    thread = threading.Thread(target=publisher.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: publisher.published == 12_002, 120), publisher.published
    finally:
        stop.set()
        thread.join(timeout=30)
    invoices = [json.loads(r.value) for r in read_topic(kafka_bootstrap, topic)
                if b'"InvoiceIssued"' in r.value]  # fmt: skip
    assert len(invoices) == 1
    assert len(json.dumps(invoices[0])) > 1024 * 1024
    assert invoices[0]["data"]["charge_ids"] == charge_ids
