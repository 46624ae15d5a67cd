"""Erasure through Kafka (SPEC §13): `ledger publish` sends personal fields in clear to the
trusted readers of `ledger.events`, then the `CustomerPersonalDataErased` event; `ledger
project` (PostgreSQL rows fed from the topic) ends with `[erased]` in every row, equal to a
fold of the event store, while what was published before stays as it was."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from consumers.kafka_support import StopFlag
from consumers.project import Projector
from consumers.publish import Publisher
from ledger.app.views import project_rows
from ledger.bootstrap import build_app
from ledger.config import Settings
from ledger.store.db import Database
from projections.store import RowStore
from tests.e2e.procs import read_topic
from tests.helpers import msgs
from tests.integration.test_erasure import FORGOTTEN, KEPT_NAME, LINES, PERSONAL

pytestmark = pytest.mark.integration
NAMES = ("accounts", "support", "margin")


def test_published_then_erased_and_projected_from_kafka_equals_the_store(
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=fresh_pg_url(), kafka_bootstrap=kafka_bootstrap,
                        topic_events=kafka_topics("events"),
                        consumer_group_project=f"project-{time.monotonic_ns()}",
                        api_tokens_file=tmp_path / "tokens.toml")  # fmt: skip
    ledger = build_app(settings)
    ledger.handle_batch(msgs(LINES))
    ledger.run_invoices("2025-01", date(2025, 2, 1))
    publisher = Publisher(ledger, settings, StopFlag())
    while publisher.publish_once():
        pass
    before = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topic_events)]
    assert PERSONAL[0] in json.dumps(before)  # trusted readers got it in clear

    assert ledger.forget(FORGOTTEN, "DSR-42").erased_now
    while publisher.publish_once():
        pass
    publisher.producer.close(timeout=10)
    records = [json.loads(r.value) for r in read_topic(kafka_bootstrap, settings.topic_events)]
    kept = {json.dumps(r, sort_keys=True) for r in records}
    assert all(json.dumps(b, sort_keys=True) in kept for b in before)  # published: kept as is
    assert len(records) == len(before) + 1
    erasure = [r for r in records if r["event_type"] == "CustomerPersonalDataErased"]
    assert len(erasure) == 1 and not any(v in json.dumps(erasure) for v in PERSONAL)

    head = ledger.head_position()
    watch = Database(settings.database_url)

    def caught_up() -> bool:
        positions = [RowStore(watch, create_schema=False).position(n) for n in NAMES]
        watch.commit()
        return all(p == head for p in positions)

    stop = StopFlag()
    projector = Projector(settings, stop)
    thread = threading.Thread(target=projector.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not caught_up() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        watch.close()

    db = Database(settings.database_url)
    try:
        rows = RowStore(db)
        for name in NAMES:
            stored = rows.load_all(name)
            assert stored == project_rows(ledger, name), name
            text = json.dumps(stored)
            assert not any(value in text for value in PERSONAL), name
        assert rows.load_all("accounts")[FORGOTTEN]["name"] == "[erased]"
        assert KEPT_NAME in json.dumps(rows.load_all("accounts"))
        db.commit()
    finally:
        db.close()
