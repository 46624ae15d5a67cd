"""The store-wide record of decided messages (`ledger_messages`), written in the SAME
transaction as the events a batch stores (and, embedded, its dead letters).

One row per message: its key (the `message_id`; for a record that could not be parsed,
`raw:<source>:<partition>:<offset>:<sha256 of the bytes>`), the payload fingerprint, the
customer, and the outcome: `applied` or `refused` (with the dead-letter code and reason).
With it a message delivered again gets the decision it got the first time, whatever happened
in between (a refused refund stays refused after a later payment, until `ledger deadletters
replay` re-submits it on purpose), and a `message_id` is unique across the whole store (SPEC
§3), not only within one customer's stream.

The recorders here (SQLite, and in-memory for tests; PostgreSQL is in ledger.store.pgrecorder;
the Decision value is in ledger.app.decisions) take three extra keyword arguments of
`insert_events` (what `Application.save(**kwargs)` passes on):
- `decisions`: new rows, plain INSERT: a second writer deciding the same message at the same
  time fails on the primary key (an IntegrityError: the batch is retried on fresh state);
- `redecisions`: rows replacing earlier ones (a replayed dead letter decided again);
- `dead_letters`: rows of `ledger_deadletters` (embedded mode), so a refusal and its dead
  letter can never be separated by a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from ledger.app.deadletters import DeadLetter
from ledger.app.decisions import APPLIED, REFUSED, Decision, raw_key
from ledger.store.deadletters import SCHEMA as DEADLETTER_SCHEMA

SCHEMA = """CREATE TABLE IF NOT EXISTS ledger_messages (
    message_key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    customer_id TEXT,
    outcome TEXT NOT NULL,
    code TEXT,
    reason TEXT,
    source TEXT,
    partition_no INTEGER,
    offset_no BIGINT,
    decided_at TEXT NOT NULL
)"""

COLUMNS = (
    "message_key, fingerprint, customer_id, outcome, code, reason, source, partition_no,"
    " offset_no, decided_at"
)
INSERT = f"INSERT INTO ledger_messages ({COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
UPSERT = (
    INSERT + " ON CONFLICT (message_key) DO UPDATE SET fingerprint = excluded.fingerprint,"
    " customer_id = excluded.customer_id, outcome = excluded.outcome, code = excluded.code,"
    " reason = excluded.reason, source = excluded.source,"
    " partition_no = excluded.partition_no, offset_no = excluded.offset_no,"
    " decided_at = excluded.decided_at"
)
INSERT_DEAD_LETTER = (
    "INSERT INTO ledger_deadletters (code, message, source, partition_no, offset_no,"
    " record_key, raw, raw_encoding, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
SELECT = f"SELECT {COLUMNS} FROM ledger_messages WHERE message_key IN "


def dead_letter_row(letter: DeadLetter, now: str) -> tuple[Any, ...]:
    return (letter.code, letter.message, letter.source, letter.partition, letter.offset,
            letter.key, letter.raw, letter.raw_encoding, now)  # fmt: skip


def write_side_tables(cursor: Any, kwargs: Mapping[str, Any], placeholder: str = "%s") -> None:
    """Write the batch's decisions and dead letters with the recorder's cursor (same
    transaction as its events). `placeholder` is "?" for sqlite3."""

    def sql(statement: str) -> str:
        return statement if placeholder == "%s" else statement.replace("%s", placeholder)

    decisions: Sequence[Decision] = kwargs.get("decisions") or ()
    redecisions: Sequence[Decision] = kwargs.get("redecisions") or ()
    letters: Sequence[DeadLetter] = kwargs.get("dead_letters") or ()
    if decisions:
        cursor.executemany(sql(INSERT), [d.row() for d in decisions])
    if redecisions:
        cursor.executemany(sql(UPSERT), [d.row() for d in redecisions])
    if letters:
        now = kwargs.get("decided_at") or ""
        cursor.executemany(sql(INSERT_DEAD_LETTER), [dead_letter_row(d, now) for d in letters])


def _decision(row: Sequence[Any]) -> Decision:
    return Decision(*row)


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus `ledger_messages` and embedded dead letters in
    the events' transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            SCHEMA,
            DEADLETTER_SCHEMA.format(serial="INTEGER"),
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        write_side_tables(c, kwargs, placeholder="?")
        return ids

    def select_decisions(self, keys: Sequence[str]) -> dict[str, Decision]:
        found: dict[str, Decision] = {}
        unique = list(dict.fromkeys(keys))
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(unique), 500):  # SQLite's bound-parameter limit
                chunk = unique[start : start + 500]
                c.execute(SELECT + "(" + ",".join("?" * len(chunk)) + ")", chunk)
                for row in c.fetchall():
                    found[row[0]] = _decision(tuple(row))
        return found


class LedgerPOPORecorder(POPOApplicationRecorder):
    """In-memory recorder (tests, `memory://`) with the same decision rules."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions: dict[str, Decision] = {}
        self.dead_letters: list[DeadLetter] = []

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self._database_lock:
            new: Sequence[Decision] = kwargs.get("decisions") or ()
            keys = [d.key for d in new]
            if len(set(keys)) != len(keys) or any(k in self.decisions for k in keys):
                raise IntegrityError("ledger_messages: message_key already decided")
            ids = super()._insert_events(stored_events, **kwargs)
            for decision in [*new, *(kwargs.get("redecisions") or ())]:
                self.decisions[decision.key] = decision
            self.dead_letters.extend(kwargs.get("dead_letters") or ())
            return ids

    def select_decisions(self, keys: Sequence[str]) -> dict[str, Decision]:
        with self._database_lock:
            return {k: self.decisions[k] for k in keys if k in self.decisions}


__all__ = [
    "APPLIED",
    "REFUSED",
    "Decision",
    "LedgerPOPORecorder",
    "LedgerSQLiteRecorder",
    "raw_key",
    "write_side_tables",
]
