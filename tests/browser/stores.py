"""The console under test: the small store of tests/unit/test_api.py, embedded on a SQLite
file or in production shape (PostgreSQL event store, projection rows in PostgreSQL as
`ledger project` keeps them, Kafka configured so that the API reads those rows), served by
uvicorn on 127.0.0.1 in a thread: a real HTTP server for a real browser."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ledger.api import create_app
from ledger.app.application import LedgerApplication
from ledger.app.checkpoints import take_checkpoint
from ledger.config import Settings
from ledger.store import tokens
from ledger.store.checkpoints import CheckpointStore
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from ledger.store.readmodels import rebuild
from tests.helpers import build, msgs
from tests.unit.test_api import TODAY, populate

AUDIT_KEY = bytes(range(32))
CUSTOMERS = ("contoso", "fabrikam", "late-1", "late-2", "late-3", "late-4")
VOIDED = "INV-contoso-2025-02"
WRITTEN_OFF = "INV-late-4-2025-01"


@dataclass
class Console:
    """A running API + console, with a token per role."""

    base: str
    database_url: str
    tokens: dict[str, str]
    ledger: LedgerApplication
    app: Any

    def api(self, path: str, role: str = "admin", **params: Any) -> Any:
        """GET an API endpoint with a bearer token; the JSON body."""
        response = httpx.get(
            self.base + path,
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[role]}"},
        )
        assert response.status_code == 200, response.text
        return response.json()


def build_ledger(database_url: str) -> LedgerApplication:
    """tests/unit/test_api.py's store, and the SPEC §12 corrections: contoso's February
    invoice voided and reissued, late-4's January invoice written off as bad debt."""
    ledger = LedgerApplication(eventsourcing_env(database_url), clock=lambda: TODAY)
    populate(ledger)
    ledger.void_invoice(VOIDED, "billed to the wrong contact", at=datetime(2025, 3, 5, tzinfo=UTC))
    assert ledger.run_invoices("2025-02", date(2025, 3, 5)) == [f"{VOIDED}-2"]
    write_off = build(
        "write_off", "late-4", "wo-late-4", write_off_id="WO-1", amount="20.00", currency="USD",
        invoice_id=WRITTEN_OFF, reason="insolvent", occurred_at="2025-03-19T09:00:00Z",
    )  # fmt: skip
    assert [o.status for o in ledger.handle_batch(msgs([write_off])).outcomes] == ["applied"]
    return ledger


def console_app(
    tmp: Path, database_url: str, *, stored: bool, kafka: str | None = None
) -> tuple[Any, LedgerApplication, dict[str, str]]:
    """The FastAPI app over a populated store; `stored`: projection rows rebuilt into the
    database and Kafka configured, so that pages and API read the stored rows."""
    ledger = build_ledger(database_url)
    db = Database(database_url)
    try:
        take_checkpoint(ledger, CheckpointStore(db), AUDIT_KEY)
    finally:
        db.close()
    if stored:
        db = Database(database_url)
        try:
            rebuild(ledger, db)
        finally:
            db.close()
    path = tmp / "tokens.toml"
    by_role = {role: tokens.create(path, f"{role}-1", role) for role in tokens.ROLES}
    settings = Settings(
        database_url=database_url,
        api_tokens_file=path,
        kafka_bootstrap=kafka if stored else None,
        audit_key=AUDIT_KEY.hex(),
    )
    return create_app(settings, ledger), ledger, by_role


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port until the block ends; yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console's test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
