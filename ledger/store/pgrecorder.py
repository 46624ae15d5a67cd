"""The `eventsourcing` PostgreSQL application recorder with cheaper round trips.

Same table, same locking (the table lock that keeps notification ids in commit order), same
NOTIFY; only how rows travel changes:
- events are inserted as four arrays of plain values in binary format, dumped in C by
  psycopg, instead of one array of composite values that psycopg escapes in Python
  (1,000 events: ~4 ms instead of ~35-100 ms of client CPU);
- the batch's decisions (`ledger_messages`) go in by one binary COPY, rows written in C;
- `select_streams(ids)` reads the streams of many aggregates in one query (an ingest batch
  loads the accounts it has not cached in one round trip, not one per customer);
- notifications are read as binary tuples, not a dict per row (a third of the time a
  rebuild spent reading the log);
- writers take turns under a transaction-level advisory lock instead of the library's
  `LOCK TABLE ... IN EXCLUSIVE MODE`. Both keep notification ids in commit order (every
  writer of the table goes through this recorder), but the table lock also conflicts with
  (auto)VACUUM and ANALYZE: each autovacuum of the events table stalled every writer for
  deadlock_timeout (1 s, seen in the lag benchmark) until PostgreSQL cancelled it, so the
  table was never vacuumed; an anti-wraparound vacuum, which is not cancelled, would have
  stopped ingest for its whole run.

It also keeps `ledger_messages` (see ledger.store.decisions) and, embedded, the dead letters in
the same transaction as the events (`insert_events(..., decisions=, redecisions=,
dead_letters=)`), also when a batch stores no event at all (only refusals).

The ledger's application selects it through the library's APPLICATION_RECORDER_TOPIC.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, PyFormat, Transformer
from psycopg.errors import DuplicateObject
from psycopg.pq import Format
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier

from ledger.app.decisions import Decision
from ledger.store.db import SCHEMA_LOCK_ID
from ledger.store.deadletters import SCHEMA as DEADLETTER_SCHEMA
from ledger.store.decisions import COLUMNS as DECISION_COLUMNS
from ledger.store.decisions import SCHEMA as DECISIONS_SCHEMA
from ledger.store.decisions import SELECT as SELECT_DECISIONS
from ledger.store.decisions import write_side_tables

# The `ledger_messages` column types in order (ledger.store.decisions.SCHEMA), for COPY.
_DECISION_TYPES = ["text"] * 7 + ["int4", "int8", "text"]


class _Dumped:
    """A query parameter already written in PostgreSQL's binary form (with its type), so
    executing the query does not write it again (see `_insert_stored_events`)."""

    __slots__ = ("data", "oid")

    def __init__(self, data: Buffer, oid: int) -> None:
        self.data = data
        self.oid = oid

    @classmethod
    def arrays(cls, curs: Any, *values: list[Any]) -> tuple[_Dumped, ...]:
        """Each list as psycopg writes it for a `%b` parameter (same dumper, same bytes);
        the cursor then passes them through as they are."""
        curs.adapters.register_dumper(cls, _DumpedDumper)
        transformer = Transformer.from_context(curs)
        dumped = []
        for value in values:
            dumper = transformer.get_dumper(value, PyFormat.BINARY)
            dumped.append(cls(dumper.dump(value), dumper.oid))  # type: ignore[arg-type]
        return tuple(dumped)


class _DumpedDumper(Dumper):
    """Passes a _Dumped through, declaring its type (one dumper per type, as psycopg's own
    list dumpers do)."""

    format = Format.BINARY

    def dump(self, obj: _Dumped) -> Buffer:
        return obj.data

    def get_key(self, obj: _Dumped, format: PyFormat) -> Any:
        return (type(obj), obj.oid)  # one dumper per type oid (its `oid` is sent)

    def upgrade(self, obj: _Dumped, format: PyFormat) -> Dumper:
        dumper = type(self)(type(obj))
        dumper.oid = obj.oid
        return dumper


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def create_table(self) -> None:
        """The library's create_table, its composite type made under the schema lock too.

        The library makes the type in a transaction of its own, outside any lock, and
        suppresses only DuplicateObject: two processes starting together on a fresh database
        could both try, and the loser got `relation "stored_event_uuid" already exists`
        (DuplicateTable; seen once in a CI run of two `ledger ingest` started at once).
        Under the lock the second one finds the type made (DuplicateObject, suppressed)."""
        for statement in self.sql_create_statements:
            if "CREATE TYPE" in statement.as_string():
                with (  # in this order, as the library's (errors are re-typed on the way out)
                    self.datastore.transaction(commit=True) as curs,
                    contextlib.suppress(DuplicateObject),
                ):
                    curs.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,),
                                 prepare=False)  # fmt: skip
                    curs.execute(statement, prepare=False)
        with self.datastore.transaction(commit=True) as curs:
            self._create_table(curs)
        self.datastore.register_type_adapters()

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Processes starting together on a fresh database (consume, publish, project) would
        # race on CREATE TABLE IF NOT EXISTS (a unique violation in the catalog): take turns.
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,), prepare=False)
        super()._create_table(curs)
        curs.execute(DECISIONS_SCHEMA, prepare=False)  # type: ignore[call-overload]
        curs.execute(DEADLETTER_SCHEMA.format(serial="BIGSERIAL"), prepare=False)  # type: ignore[call-overload]

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        names = {
            "schema": Identifier(self.datastore.schema),
            "table": Identifier(self.events_table_name),
            "id_type": SQL(self.datastore.originator_id_type),
        }
        self.insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
            " RETURNING notification_id"
        ).format(**names)
        # One lock per events table (schema and name), apart from the ledger's other locks.
        name = f"csp-ledger:events-writers:{self.datastore.schema}.{self.events_table_name}"
        self.writers_lock_id = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8]) >> 1
        self.copy_decisions_statement = SQL(
            f"COPY ledger_messages ({DECISION_COLUMNS}) FROM STDIN (FORMAT BINARY)"
        )
        self.select_streams_statement = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{table}"
            " WHERE originator_id = ANY(%b::{id_type}[])"
            " ORDER BY originator_id, originator_version"
        ).format(**names)

    def _lock_table(self, curs: Any) -> None:
        """Serialise the writers, as the library's table lock does (see the module doc)."""
        curs.execute(self.lock_table_statements[0], prepare=True)  # SET LOCAL lock_timeout
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (self.writers_lock_id,), prepare=True)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The events, then the batch's decisions and dead letters, in one transaction (a
        batch of refusals only still writes its decisions). Raises IntegrityError when
        another writer stored a stream version or decided a message first."""
        notification_ids: Sequence[int] | None = None
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            # The decisions first, in one statement, BEFORE the writers' lock: a message
            # decided by another writer at the same time still fails on its key (the batch
            # is retried), and the lock is held only for the events (the serial point of
            # every writer: shorter holds, more batches per second). In key order, so two
            # writers that meet on several keys wait for each other in one order, never in
            # a cycle (no deadlock).
            decisions: Sequence[Decision] = kwargs.get("decisions") or ()
            if decisions:
                # COPY in binary: psycopg writes each row in C (~1.3 ms for 1,000 rows, the
                # arrays of an INSERT ... unnest took ~3-5 ms). A key decided before fails
                # as the INSERT did (unique violation: an IntegrityError).
                with curs.copy(self.copy_decisions_statement) as copy:
                    copy.set_types(_DECISION_TYPES)
                    for decision in sorted(decisions):  # a Decision is its row (row())
                        copy.write_row(decision)
            write_side_tables(curs, {**kwargs, "decisions": ()})
            if stored_events:
                self._insert_stored_events(curs, stored_events)
                # The ids as plain tuples (the library reads a dict per row).
                curs.row_factory = tuple_row  # type: ignore[assignment]
                notification_ids = [row[0] for row in curs.fetchall()]  # type: ignore[index]
                if len(notification_ids) != len(stored_events):
                    raise ProgrammingError(
                        f"Couldn't get all notification IDs (got {len(notification_ids)},"
                        f" expected {len(stored_events)})"
                    )
        return notification_ids

    def select_decisions(self, keys: Sequence[str]) -> dict[str, Decision]:
        """The recorded decisions of these message keys (absent: never decided)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            # The keys as a binary array: as text, psycopg quotes and escapes each in Python.
            curs.execute(SELECT_DECISIONS + "(SELECT unnest(%b::text[]))", (unique,),
                         prepare=True)  # fmt: skip
            return {row[0]: Decision(*row) for row in curs.fetchall()}

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # Everything that does not need the writers' lock is done before taking it, so two
        # writers overlap more (the lock is the serial point of every writer): the NOTIFY
        # (delivered at commit whenever it is queued) and writing the four arrays out
        # (~1-3 ms for 1,000 events); under the lock only the INSERT and the commit remain.
        self._notify_channel(curs)
        arrays = _Dumped.arrays(
            curs,
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        self._lock_table(curs)
        curs.execute(self.insert_arrays_statement, arrays, prepare=True)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's query and result, read as binary tuples."""
        conditions: list[SQL] = []
        params: list[Any] = []
        if start is not None:
            conditions.append(SQL("notification_id >= %s" if inclusive_of_start
                                  else "notification_id > %s"))  # fmt: skip
            params.append(start)
        if stop is not None:
            conditions.append(SQL("notification_id <= %s"))
            params.append(stop)
        if topics:
            conditions.append(SQL("topic = ANY(%s)"))
            params.append(list(topics))
        where = SQL(" WHERE ") + SQL(" AND ").join(conditions) if conditions else SQL("")
        params.append(limit)
        statement = (
            SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state"
                " FROM {schema}.{table}"
            ).format(
                schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)
            )
            + where
            + SQL(" ORDER BY notification_id LIMIT %s")
        )
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return [
                Notification(
                    id=notification_id,
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                for notification_id, originator_id, version, topic, state in curs.fetchall()
            ]

    def select_streams(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of each of these aggregates, in version order (one query).
        Aggregates with no events are absent."""
        streams: dict[UUID, list[StoredEvent]] = {}
        if not originator_ids:
            return streams
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self.select_streams_statement, (list(originator_ids),), prepare=True)
            for originator_id, version, topic, state in curs:
                streams.setdefault(originator_id, []).append(
                    StoredEvent(originator_id, version, topic, bytes(state))
                )
        return streams


__all__ = ["LedgerPostgresRecorder"]
