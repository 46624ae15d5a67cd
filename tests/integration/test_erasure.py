"""Erasure of personal data (SPEC §13), on SQLite and PostgreSQL, through the `ledger` CLI and
the API: personal fields are stored sealed (no plaintext in the event table), `ledger
customers forget` makes them read `[erased]` in every view, the API, documents and a rebuild,
while amounts stay and `ledger audit verify` passes; a missing or wrong key fails loudly;
`ledger customers encrypt-existing` restates a store written in clear, once."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import psycopg
import pytest

from ledger.app.application import LedgerApplication
from ledger.app.views import PROJECTIONS, project_rows
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from ledger.store.readmodels import rebuild
from ledger.store.wire import Decoder
from projections.store import RowStore, apply_projections
from tests.helpers import (
    LEDGER_CLI,
    charge,
    customer_registered,
    customer_updated,
    jsonl,
    msgs,
    payment,
    run_cli,
    support_interaction,
    support_ticket_opened,
)
from tests.unit.test_api import build_api

pytestmark = pytest.mark.integration

FORGOTTEN, KEPT = "fabrikam", "contoso"
# Every personal value of the forgotten customer: none may be readable after the erasure.
PERSONAL = [
    "Fabrikam Privately Named", "jane.doe@fabrikam.example", "j.doe2@fabrikam.example",
    "Jane Doe cannot log in", "Jane Doe phoned from +1 555 0100",
]  # fmt: skip
KEPT_NAME = "Contoso Kept Name"
LINES = [
    customer_registered(KEPT, name=KEPT_NAME, email="ap@contoso.example"),
    customer_registered(FORGOTTEN, name=PERSONAL[0], email=PERSONAL[1]),
    charge(KEPT, "C-1", "20.00"),
    charge(FORGOTTEN, "F-1", "100.00"),
    charge(FORGOTTEN, "F-2", "50.00"),
    payment(FORGOTTEN, "FP-1", "60.00"),
    customer_updated(FORGOTTEN, email=PERSONAL[2]),
    support_ticket_opened(FORGOTTEN, "T-1", subject=PERSONAL[3]),
    support_interaction(FORGOTTEN, "T-1", note=PERSONAL[4]),
    support_ticket_opened(KEPT, "T-7", subject="Kept subject"),
]
VIEWS = ("balances", "delinquency", "support", "trial-balance", "margin")


def raw_dump(url: str, table: str) -> str:
    """Every row of a table as text, read behind the ledger's back."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url[len("sqlite:///") :])) as conn:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
    else:
        with psycopg.connect(url) as conn:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
    return "\n".join(
        " ".join(bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview)
                 else str(v) for v in row)
        for row in rows
    )  # fmt: skip


def events_table(url: str) -> str:
    return "stored_events" if url.startswith("sqlite") else "ledger_events"


def ok(result: CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return result.stdout


def cli_env(url: str, cwd: Path, *args: str, **env: str) -> CompletedProcess[str]:
    """`ledger ARGS` on `url` with extra LEDGER_* settings."""
    import subprocess

    full = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    full.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_FORMAT="json", **env)
    return subprocess.run([LEDGER_CLI, *args], env=full, cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def views(url: str, cwd: Path) -> dict[str, Any]:
    return {v: json.loads(ok(run_cli(url, "show", v, "--json", cwd=cwd))) for v in VIEWS}


def without_personal(rows: Any) -> Any:
    """Rows with the personal columns left out (what must not change on erasure)."""
    if isinstance(rows, list):
        return [without_personal(r) for r in rows]
    if isinstance(rows, dict):
        return {k: without_personal(v) for k, v in rows.items()
                if k not in ("name", "email", "subject")}  # fmt: skip
    return rows


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store with LINES ingested and January invoiced, through the CLI."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        fresh_pg_url: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
        url = fresh_pg_url()
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(LINES), encoding="utf-8")
    ok(run_cli(url, "ingest", str(source), cwd=tmp_path))
    ok(run_cli(url, "invoice", "run", "--period", "2025-01", cwd=tmp_path))
    yield url


def app_on(url: str) -> LedgerApplication:
    return LedgerApplication(eventsourcing_env(url))


def test_the_event_store_holds_no_personal_field_in_clear(store: str, tmp_path: Path) -> None:
    stored = raw_dump(store, events_table(store))
    for value in [*PERSONAL, KEPT_NAME, "ap@contoso.example", "Kept subject"]:
        assert value not in stored
    # Sealed: 2 names and 2 emails at registration, 1 updated email, 2 subjects, 1 note.
    assert stored.count("enc:v1:") == 8
    before = views(store, tmp_path)
    text = json.dumps(before)
    for value in [PERSONAL[0], PERSONAL[3], KEPT_NAME]:
        assert value in text  # readers see them in clear while the key exists
    assert ok(run_cli(store, "audit", "verify", cwd=tmp_path)).startswith("OK")


def test_forget_erases_from_views_api_documents_and_rebuild_and_keeps_the_proof(
    store: str, tmp_path: Path
) -> None:
    before = views(store, tmp_path)
    app = app_on(store)
    reveal, decoder = app.revealer(everything=True), Decoder(app.mapper)
    published_before = [  # what `ledger publish` sent downstream before the erasure
        reveal(e) for n in app.notifications() if (e := decoder.published(n)) is not None
    ]

    out = ok(run_cli(store, "customers", "forget", FORGOTTEN, "--reason", "DSR-42", cwd=tmp_path))
    assert out.startswith(f"forgot {FORGOTTEN}") and "1 ticket" in out
    again = ok(run_cli(store, "customers", "forget", FORGOTTEN, "--reason", "DSR-42",
                       cwd=tmp_path))  # fmt: skip
    assert "already erased" in again
    unknown = run_cli(store, "customers", "forget", "nobody", "--reason", "x", cwd=tmp_path)
    assert unknown.returncode == 1 and "nobody" in unknown.stderr
    assert ok(run_cli(store, "audit", "verify", cwd=tmp_path)).startswith("OK")

    after = views(store, tmp_path)
    text = json.dumps(after)
    for value in PERSONAL:
        assert value not in text
    assert KEPT_NAME in text and "Kept subject" in text
    assert without_personal(after) == without_personal(before)  # amounts, ids, statuses
    balance = {r["customer_id"]: r for r in after["balances"]}
    assert balance[FORGOTTEN]["name"] == "[erased]"
    ticket = {r["ticket_id"]: r for r in after["support"]}
    assert ticket["T-1"]["subject"] == "[erased]" and ticket["T-7"]["subject"] == "Kept subject"

    # The erasure event names what was erased, never the values.
    erased = app.stream(FORGOTTEN)[-1]
    assert type(erased).__name__ == "CustomerPersonalDataErased"
    assert erased.data["reason"] == "DSR-42" and erased.data["fields"] == ["email", "name"]
    assert not any(value in json.dumps(erased.data) for value in PERSONAL)

    # The API: customer, events (every page), tickets, statement and invoice documents.
    api = build_api(tmp_path, app, database_url=store)
    answers = [
        api.ok(f"/customers/{FORGOTTEN}"),
        api.ok(f"/customers/{FORGOTTEN}/events", limit=500),
        api.ok("/support/tickets", limit=500),
        api.ok("/delinquency", limit=500),
        api.ok("/margin", limit=500),
        api.ok(f"/customers/{FORGOTTEN}/statement"),
    ]
    document = api.get(f"/customers/{FORGOTTEN}/invoices/INV-{FORGOTTEN}-2025-01/document")
    assert document.status_code == 200, document.text
    text = json.dumps(answers) + document.content.decode("latin-1")
    for value in PERSONAL:
        assert value not in text
    assert answers[0]["name"] == "[erased]" and answers[0]["email"] == "[erased]"
    kept = api.ok(f"/customers/{KEPT}")
    assert kept["name"] == KEPT_NAME

    # A rebuild equals the in-process views, and the stored rows hold no personal value.
    db = Database(store)
    try:
        rebuild(app, db)
        rows = RowStore(db)
        for name in ("accounts", "support", "margin"):
            assert rows.load_all(name) == project_rows(app, name), name
        db.commit()
    finally:
        db.close()
    stored_rows = raw_dump(store, "projection_rows")
    for value in PERSONAL:
        assert value not in stored_rows

    # Projections fed live (Kafka's path): what was published before, then the erasure
    # event, folded into fresh rows, equal the rebuild.
    erasure = Decoder(app.mapper).published(list(app.notifications())[-1])
    assert erasure is not None and erasure["event_type"] == "CustomerPersonalDataErased"
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    live = Database(live_url)
    try:
        live_rows = RowStore(live)
        apply_projections(live_rows, list(PROJECTIONS.values()), [*published_before, erasure])
        live.commit()
        for name in ("accounts", "support", "margin"):
            assert live_rows.load_all(name) == project_rows(app, name), name
    finally:
        live.close()


def test_a_missing_or_wrong_key_fails_clearly(store: str, tmp_path: Path) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'other-keys.db'}"
    shown = cli_env(store, tmp_path, "show", "balances", "--json",
                    LEDGER_KEYS_DATABASE_URL=elsewhere)  # fmt: skip
    assert shown.returncode == 1
    assert "no key for this customer" in shown.stderr and "LEDGER_KEYS_DATABASE_URL" in shown.stderr
    memory = cli_env(store, tmp_path, "show", "balances",
                     LEDGER_KEYS_DATABASE_URL="sqlite:///:memory:")  # fmt: skip
    assert memory.returncode == 1 and "in memory" in memory.stderr

    other_key = os.urandom(32).hex()
    if store.startswith("sqlite"):
        with closing(sqlite3.connect(store[len("sqlite:///") :])) as conn, conn:
            conn.execute("UPDATE customer_keys SET key_hex = ? WHERE customer_id = ?",
                         (other_key, FORGOTTEN))  # fmt: skip
    else:
        with psycopg.connect(store) as conn:
            conn.execute("UPDATE customer_keys SET key_hex = %s WHERE customer_id = %s",
                         (other_key, FORGOTTEN))  # fmt: skip
    wrong = run_cli(store, "show", "support", "--json", cwd=tmp_path)
    assert wrong.returncode == 1 and "does not open" in wrong.stderr
    assert FORGOTTEN in wrong.stderr


def test_encrypt_existing_restates_a_store_written_in_clear_once(
    store: str, tmp_path: Path
) -> None:
    url = store
    legacy = app_on(url)
    # A writer from before SPEC §13 encryption: personal fields stored as they came.
    legacy.seal_payload = lambda kind, customer, payload: payload  # type: ignore[method-assign]
    legacy.handle_batch(msgs([
        customer_registered("olden", name="Olden Plain Name", email="olden@example.com"),
        support_ticket_opened("olden", "T-9", subject="Olden plain subject"),
    ]))  # fmt: skip
    assert "Olden Plain Name" in raw_dump(url, events_table(url))
    before = views(url, tmp_path)

    first = ok(run_cli(url, "customers", "encrypt-existing", cwd=tmp_path))
    assert first.startswith("restated 1 customer(s) sealed") and "2 skipped" in first
    second = ok(run_cli(url, "customers", "encrypt-existing", cwd=tmp_path))
    assert second.startswith("restated 0 customer(s)") and "3 skipped" in second
    assert views(url, tmp_path) == before
    assert ok(run_cli(url, "audit", "verify", cwd=tmp_path)).startswith("OK")

    # Its later personal fields are sealed; forgetting it hides even the old plaintext ...
    source = tmp_path / "later.jsonl"
    source.write_text(jsonl([customer_updated("olden", name="Olden Later Name")]))
    ok(run_cli(url, "ingest", str(source), cwd=tmp_path))
    stored = raw_dump(url, events_table(url))
    assert "Olden Later Name" not in stored
    assert "Olden Later Name" in json.dumps(views(url, tmp_path)["balances"])
    ok(run_cli(url, "customers", "forget", "olden", "--reason", "DSR-7", cwd=tmp_path))
    after = json.dumps(views(url, tmp_path))
    assert "Olden" not in after and "olden@example.com" not in after
    history = json.loads(ok(run_cli(url, "show", "balances", "--json", cwd=tmp_path)))
    assert {r["customer_id"]: r["name"] for r in history}["olden"] == "[erased]"
    # ... but the events written in clear still hold it: they are chained by hash (the
    # documented limit of encrypt-existing, docs/auditors.md "Erasure").
    assert "Olden Plain Name" in raw_dump(url, events_table(url))
    assert ok(run_cli(url, "audit", "verify", cwd=tmp_path)).startswith("OK")
