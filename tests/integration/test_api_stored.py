"""The read API in production shape: PostgreSQL event store, Kafka configured, so the views
come from the stored projection rows (filled here by `ledger.store.readmodels.rebuild`) and one
customer is one keyed row. The answers equal the embedded ones for the same history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.api.data import Reader
from ledger.app.application import LedgerApplication
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from ledger.store.readmodels import rebuild
from projections.store import RowStore
from tests.helpers import customer_registered, msgs
from tests.unit.test_api import TODAY, Api, build_api, make_ledger, populate, unlinked

pytestmark = pytest.mark.integration

ONE = ["/customers/contoso", "/customers/late-1", "/customers/contoso/balance"]
LISTS = [
    "/customers/contoso/invoices", "/customers/fabrikam/events", "/delinquency", "/remittance",
    "/support/tickets", "/trial-balance",
]  # fmt: skip


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Api:
    return build_api(tmp_path_factory.mktemp("embedded"), make_ledger())


@pytest.fixture
def stored(
    fresh_pg_url: Callable[[], str], kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[Api, str, LedgerApplication]]:
    url = fresh_pg_url()
    ledger = LedgerApplication(eventsourcing_env(url), clock=lambda: TODAY)
    populate(ledger)
    db = Database(url)
    try:
        rebuild(ledger, db)
    finally:
        db.close()
    api = build_api(tmp_path, ledger, url, kafka_bootstrap=kafka_bootstrap)
    with api.client:  # runs the app's lifespan, as a server does: the asynchronous pool opens
        yield api, url, ledger


def test_health_reports_the_stored_mode(stored: tuple[Api, str, LedgerApplication]) -> None:
    api, url, ledger = stored
    reader: Reader = api.client.app.state.reader  # type: ignore[attr-defined]
    assert reader.stored and reader.settings.database_url == url
    assert api.ok("/health", role=None) == {  # type: ignore[arg-type]
        "status": "ok", "mode": "kafka", "store": "postgresql",
        "event_log_head": ledger.head_position(),
    }  # fmt: skip


def test_stored_rows_answer_as_the_embedded_fold_does(
    stored: tuple[Api, str, LedgerApplication], embedded: Api
) -> None:
    api, _, _ = stored
    for url in ONE:
        assert api.ok(url) == embedded.ok(url), url
    for url in LISTS:  # (events: not their hash links, see unlinked)
        assert unlinked(api.ok(url, limit=2)) == unlinked(embedded.ok(url, limit=2)), url
        mine, theirs = api.all_pages(url, limit=1), embedded.all_pages(url, limit=1)
        assert (unlinked(mine[0]), mine[1]) == (unlinked(theirs[0]), theirs[1]), url


def test_past_as_of_replays_the_postgres_event_store(
    stored: tuple[Api, str, LedgerApplication], embedded: Api
) -> None:
    api, _, _ = stored
    for url in ("/customers/contoso/balance", "/delinquency", "/customers/contoso/invoices"):
        assert api.ok(url, as_of="2025-02-05") == embedded.ok(url, as_of="2025-02-05")


def test_one_customer_is_one_keyed_row(
    stored: tuple[Api, str, LedgerApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, url, _ = stored
    calls: list[tuple[str, Any]] = []
    load, load_all = RowStore.load, RowStore.load_all

    def spy_load(self: RowStore, projection: str, keys: Any, **kw: Any) -> Any:
        calls.append((projection, list(keys)))
        return load(self, projection, keys, **kw)

    def spy_load_all(self: RowStore, projection: str) -> Any:
        calls.append((projection, "ALL"))
        return load_all(self, projection)

    monkeypatch.setattr(RowStore, "load", spy_load)
    monkeypatch.setattr(RowStore, "load_all", spy_load_all)
    api.ok("/customers/contoso")
    assert calls == [("accounts", ["contoso"])]
    # A balance lookup reads the same keyed row on the asynchronous pool, not a RowStore.
    calls.clear()
    api.ok("/customers/contoso/balance")
    assert calls == []  # and it is the stored row (below), not a replay of the events

    # The answer is the stored row: change it behind the API's back and the API follows.
    db = Database(url)
    try:
        store = RowStore(db)
        row = store.load("accounts", ["contoso"])["contoso"]
        row["name"] = "Contoso (stored)"
        store.save("accounts", {"contoso": row})
        db.commit()
    finally:
        db.close()
    assert api.ok("/customers/contoso/balance")["name"] == "Contoso (stored)"
    assert api.ok("/customers/contoso")["name"] == "Contoso (stored)"


def test_a_customer_not_yet_projected_is_read_from_the_event_store(
    stored: tuple[Api, str, LedgerApplication],
) -> None:
    api, _, ledger = stored
    assert_404 = api.get("/customers/newcomer")
    assert assert_404.status_code == 404
    ledger.handle_batch(msgs([customer_registered("newcomer", occurred_at="2025-03-19T09:00:00Z")]))
    body = api.ok("/customers/newcomer/balance")
    assert body["customer_id"] == "newcomer" and body["balance"] == "0.00"
    assert [e["event_type"] for e in api.ok("/customers/newcomer/events")["items"]] == [
        "CustomerRegistered"
    ]


def test_a_history_is_read_by_its_stream_key_never_by_scanning_the_log(
    stored: tuple[Api, str, LedgerApplication], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.api import history

    api, _, ledger = stored

    def no_scan(*args: Any) -> Any:
        raise AssertionError(f"{type(ledger.recorder).__name__}: scanned the whole log")

    monkeypatch.setattr(history, "_scan", no_scan)
    items = api.all_pages("/customers/contoso/events", limit=4)[0]
    assert [e["stream_position"] for e in items] == list(range(1, len(items) + 1))


def test_forged_cursors_and_calendar_ends_on_postgresql(
    stored: tuple[Api, str, LedgerApplication],
) -> None:
    """A position beyond a BIGINT once reached PostgreSQL (500); now every decoded cursor
    part is checked first. Dates at the ends of the calendar answer, never 500."""
    import base64
    import json

    api, _, _ = stored

    def cursor(scope: str, key: list[Any]) -> str:
        raw = json.dumps({"s": scope, "k": key}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    for key in ([2**63], [2**64], [-1], [1.5], [True]):
        response = api.get("/customers/fabrikam/events", cursor=cursor("events:fabrikam", key))
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "bad_cursor"
    last = api.ok("/customers/fabrikam/events", cursor=cursor("events:fabrikam", [2**63 - 1]))
    assert last == {"items": [], "next_cursor": None}
    forged = cursor("delinquency", [2**70, "late-1"])
    assert api.get("/delinquency", cursor=forged).status_code == 400
    for as_of in ("0001-01-01", "9999-12-31"):
        for path in [*ONE, *LISTS]:
            params = {} if path.endswith(("/events", "/contoso", "/late-1")) else {"as_of": as_of}
            assert api.get(path, **params).status_code in (200, 404), (path, as_of)
