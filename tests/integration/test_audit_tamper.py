"""Tamper evidence (SPEC §4): edit stored events behind the ledger's back, directly in SQLite
and in PostgreSQL, and `ledger audit verify` names the customer and position of the first
broken event (exit 1); an untouched store verifies (exit 0) and says how many events."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any, Protocol

import psycopg
import pytest

from ledger.domain.account import account_id
from tests.helpers import (
    charge,
    customer_registered,
    jsonl,
    payment,
    run_cli,
)

pytestmark = pytest.mark.integration

VICTIM = "fabrikam"
# fabrikam's stream: 1 CustomerRegistered, 2 ChargePosted 100.00, 3 ChargePosted 50.00,
# 4 PaymentReceived 60.00, then the invoice run: 5 InvoiceIssued 150.00, 6 PaymentApplied 60.00.
LEDGER_LINES = [
    customer_registered("contoso"),
    customer_registered(VICTIM),
    charge("contoso", "C-1", "20.00"),
    charge(VICTIM, "F-1", "100.00"),
    charge(VICTIM, "F-2", "50.00"),
    payment("contoso", "CP-1", "20.00"),
    payment(VICTIM, "FP-1", "60.00"),
]
VICTIM_EVENTS = 6
# contoso: CustomerRegistered, ChargePosted, PaymentReceived, InvoiceIssued, PaymentApplied.
TOTAL_EVENTS = 5 + VICTIM_EVENTS


class EventTable(Protocol):
    """Raw access to the event store's rows of one stream, bypassing the ledger."""

    def states(self, customer_id: str) -> dict[int, bytes]: ...

    def set_state(self, customer_id: str, position: int, state: bytes) -> None: ...

    def delete(self, customer_id: str, position: int) -> None: ...

    def count(self) -> int: ...


class SqliteEvents:
    """eventsourcing.sqlite keeps every event in `stored_events`, ids as uuid hex."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _run(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.path)) as conn, conn:
            return conn.execute(sql, params).fetchall()

    def states(self, customer_id: str) -> dict[int, bytes]:
        rows = self._run(
            "SELECT originator_version, state FROM stored_events WHERE originator_id = ?",
            account_id(customer_id).hex,
        )
        return {int(v): bytes(s) for v, s in rows}

    def set_state(self, customer_id: str, position: int, state: bytes) -> None:
        self._run(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
            state, account_id(customer_id).hex, position,
        )  # fmt: skip

    def delete(self, customer_id: str, position: int) -> None:
        self._run(
            "DELETE FROM stored_events WHERE originator_id = ? AND originator_version = ?",
            account_id(customer_id).hex, position,
        )  # fmt: skip

    def count(self) -> int:
        return int(self._run("SELECT count(*) FROM stored_events")[0][0])


class PostgresEvents:
    """eventsourcing.postgres keeps the `ledger` application's events in `ledger_events`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
            assert "ledger_events" in tables, tables
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def states(self, customer_id: str) -> dict[int, bytes]:
        rows = self._run(
            "SELECT originator_version, state FROM ledger_events WHERE originator_id = %s",
            account_id(customer_id),
        )
        return {int(v): bytes(s) for v, s in rows}

    def set_state(self, customer_id: str, position: int, state: bytes) -> None:
        self._run(
            "UPDATE ledger_events SET state = %s"
            " WHERE originator_id = %s AND originator_version = %s",
            state, account_id(customer_id), position,
        )  # fmt: skip

    def delete(self, customer_id: str, position: int) -> None:
        self._run(
            "DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
            account_id(customer_id), position,
        )  # fmt: skip

    def count(self) -> int:
        return int(self._run("SELECT count(*) FROM ledger_events")[0][0])


Ledger = tuple[str, EventTable]  # database URL, raw access to its events


@pytest.fixture(params=["sqlite", "postgres"])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    """A small ledger built with the CLI (ingest + invoice run) on a fresh store."""
    table: EventTable
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        table = SqliteEvents(tmp_path / "ledger.db")
    else:
        fresh_pg_url: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
        url = fresh_pg_url()
        table = PostgresEvents(url)
    source = tmp_path / "ledger.jsonl"
    source.write_text(jsonl(LEDGER_LINES), encoding="utf-8")
    ok(run_cli(url, "ingest", str(source), cwd=tmp_path))
    ok(run_cli(url, "invoice", "run", "--period", "2025-01", cwd=tmp_path))
    assert sorted(table.states(VICTIM)) == list(range(1, VICTIM_EVENTS + 1))
    yield url, table


def ok(result: CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def verify(url: str) -> CompletedProcess[str]:
    return run_cli(url, "audit", "verify")


def assert_broken_at(url: str, customer_id: str, position: int) -> str:
    result = verify(url)
    assert result.returncode == 1, (result.stdout, result.stderr)
    found = re.search(r"customer (\S+) position (\d+)", result.stdout)
    assert found, result.stdout
    assert (found.group(1), int(found.group(2))) == (customer_id, position), result.stdout
    return result.stdout


def test_untampered_ledger_verifies_and_counts_every_event(built: Ledger) -> None:
    url, table = built
    result = verify(url)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert table.count() == TOTAL_EVENTS
    assert f"OK: {TOTAL_EVENTS} events verified" in result.stdout


def test_changed_amount_inside_an_event_is_named(built: Ledger) -> None:
    url, table = built
    state = table.states(VICTIM)[2]
    assert state.count(b'"amount":"100.00"') == 1, state
    table.set_state(VICTIM, 2, state.replace(b'"amount":"100.00"', b'"amount":"10.00"'))

    out = assert_broken_at(url, VICTIM, 2)
    assert "content does not match its hash" in out


def test_deleted_event_in_the_middle_of_a_stream_is_named(built: Ledger) -> None:
    url, table = built
    table.delete(VICTIM, 3)

    out = assert_broken_at(url, VICTIM, 3)
    assert "missing" in out


def test_swapped_states_of_two_events_of_one_stream_are_named(built: Ledger) -> None:
    url, table = built
    states = table.states(VICTIM)
    table.set_state(VICTIM, 3, states[4])
    table.set_state(VICTIM, 4, states[3])

    assert_broken_at(url, VICTIM, 3)


def test_restoring_the_original_bytes_verifies_again(built: Ledger) -> None:
    url, table = built
    original = table.states(VICTIM)[5]
    table.set_state(VICTIM, 5, original.replace(b'"total":"150.00"', b'"total":"1.50"'))
    assert_broken_at(url, VICTIM, 5)

    table.set_state(VICTIM, 5, original)

    assert verify(url).returncode == 0


# ---- every stored field is in the chain (hash rule 2) ------------------------------------


def edit_state(table: EventTable, position: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Decode the stored JSON state of the victim's event, change it, store it back."""
    state = json.loads(table.states(VICTIM)[position])
    change(state)
    table.set_state(VICTIM, position, json.dumps(state, separators=(",", ":")).encode())


def later(stamp: dict[str, str]) -> None:
    """A transcoded datetime one second later."""
    moment = datetime.fromisoformat(stamp["_data_"])
    stamp["_data_"] = (moment + timedelta(seconds=1)).isoformat()


# field -> how to change it (the victim's events: 2 ChargePosted F-1 caused by a message,
# 1 CustomerRegistered, the first of the stream).
FIELD_EDITS: dict[str, tuple[int, Callable[[dict[str, Any]], None]]] = {
    "message_id": (2, lambda s: s.update(message_id=s["message_id"] + "-again")),
    "message_id (null)": (5, lambda s: s.update(message_id="chg-F-1")),
    "timestamp": (2, lambda s: later(s["timestamp"])),
    "occurred_at": (2, lambda s: later(s["occurred_at"])),
    "customer_id": (2, lambda s: s.update(customer_id="contoso")),
    "data": (2, lambda s: s["data"].update(charge_id="F-9")),
    "prev_hash": (2, lambda s: s.update(prev_hash="0" * 64)),
    "hash": (2, lambda s: s.update(hash="f" * 64)),
    "originator_topic": (1, lambda s: s.update(
        originator_topic="ledger.domain.remittance:MicrosoftRemittance")),
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(FIELD_EDITS))
def test_an_edited_stored_field_is_named(built: Ledger, field: str) -> None:
    url, table = built
    position, change = FIELD_EDITS[field]
    edit_state(table, position, change)

    assert_broken_at(url, VICTIM, position)


def test_every_stored_field_has_an_edit_above(built: Ledger) -> None:
    _, table = built
    stored = {key for state in table.states(VICTIM).values() for key in json.loads(state)}
    assert stored == {f.split(" ")[0] for f in FIELD_EDITS}, stored
