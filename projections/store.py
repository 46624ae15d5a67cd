"""Projection rows in the database (PostgreSQL in production, SQLite works too).

One table of JSON rows per (projection, key), the last global position applied per
(projection, customer) so a re-published event is never counted twice, and the Kafka offsets
consumed — all written in the caller's transaction, together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ledger.db import Database
from projections.base import Event, Projection, Rows, prepare

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS projection_rows (
        projection TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (projection, key))""",
    """CREATE TABLE IF NOT EXISTS projection_customer_positions (
        projection TEXT NOT NULL, customer_id TEXT NOT NULL, position BIGINT NOT NULL,
        PRIMARY KEY (projection, customer_id))""",
    """CREATE TABLE IF NOT EXISTS projection_offsets (
        consumer TEXT NOT NULL, topic TEXT NOT NULL, partition_no INTEGER NOT NULL,
        next_offset BIGINT NOT NULL, PRIMARY KEY (consumer, topic, partition_no))""",
)


class RowStore:
    def __init__(self, db: Database, *, create_schema: bool = True) -> None:
        """`create_schema=False` skips the DDL: for readers that make a store per request
        over a database whose tables already exist."""
        self.db = db
        if create_schema:
            db.create_schema(*SCHEMA)

    # ---- rows -------------------------------------------------------------------------

    def load(self, projection: str, keys: Iterable[str], *, lock: bool = False) -> Rows:
        """Rows by key; with lock=True (PostgreSQL) they stay locked until commit, taken in
        key order (see _select_locked)."""
        wanted = sorted(set(keys))
        rows: Rows = {}
        if self.db.is_postgres:
            # One statement each, whatever the number of keys (arrays, not a statement per
            # key): the round trips were most of a projector's time. Arrays go in binary
            # (%b): as text, psycopg escapes every quote of every JSON document in Python.
            sql = "SELECT key, doc FROM projection_rows WHERE projection = %s AND key = ANY(%b)"
            if lock:
                found = self._select_locked(
                    sql + ' ORDER BY key COLLATE "C" FOR UPDATE',  # = Python's order
                    "INSERT INTO projection_rows (projection, key, doc)"
                    " SELECT %s, k, 'null' FROM unnest(%b::text[]) AS k"
                    " ON CONFLICT (projection, key) DO NOTHING",
                    projection,
                    wanted,
                )
            else:
                found = self.db.execute(sql, (projection, wanted)).fetchall()
            for key, doc in found:
                if doc != "null":
                    rows[key] = _loads(doc)
            return rows
        for chunk in _chunks(wanted, 500):
            marks = ",".join(["%s"] * len(chunk))
            sql = f"SELECT key, doc FROM projection_rows WHERE projection = %s AND key IN ({marks})"
            for key, doc in self.db.execute(sql, (projection, *chunk)).fetchall():
                if doc != "null":
                    rows[key] = _loads(doc)
        return rows

    def _select_locked(
        self, select: str, create: str, projection: str, wanted: list[str]
    ) -> list[tuple[str, Any]]:
        """(key, value) of the wanted rows, locked until commit, in key order. Rows that do
        not exist yet are created first (placeholders, by `create`) and then locked too, so
        that two processes creating the same row serialise on it instead of racing.

        Existing rows are locked first, then the new ones: one statement when nothing is
        new, as in a steady stream. Two writers that each create a row the other then
        wants can deadlock; PostgreSQL aborts one (an OperationalError: its batch is rolled
        back and retried, as after an outage)."""
        found: list[tuple[str, Any]] = self.db.execute(select, (projection, wanted)).fetchall()
        if len(found) < len(wanted):
            have = {key for key, _ in found}
            missing = [key for key in wanted if key not in have]
            self.db.execute(create, (projection, missing))
            found += self.db.execute(select, (projection, missing)).fetchall()
        return found

    def load_all(self, projection: str) -> Rows:
        result = self.db.execute(
            "SELECT key, doc FROM projection_rows WHERE projection = %s AND doc <> 'null'",
            (projection,),
        ).fetchall()
        return {key: _loads(doc) for key, doc in result}

    def has_rows(self, projection: str) -> bool:
        found = self.db.execute(
            "SELECT 1 FROM projection_rows WHERE projection = %s LIMIT 1", (projection,)
        ).fetchone()
        return found is not None

    def save(self, projection: str, rows: Rows) -> None:
        docs = [(k, _dumps(v)) for k, v in rows.items()]
        if self.db.is_postgres:
            self.db.execute(
                "INSERT INTO projection_rows (projection, key, doc)"
                " SELECT %s, k, d FROM unnest(%b::text[], %b::text[]) AS r(k, d)"
                " ON CONFLICT (projection, key) DO UPDATE SET doc = excluded.doc",
                (projection, [k for k, _ in docs], [d for _, d in docs]),
            )
            return
        self.db.executemany(
            "INSERT INTO projection_rows (projection, key, doc) VALUES (%s, %s, %s)"
            " ON CONFLICT (projection, key) DO UPDATE SET doc = excluded.doc",
            [(projection, k, d) for k, d in docs],
        )

    def clear(self, projection: str) -> None:
        for table in ("projection_rows", "projection_customer_positions"):
            self.db.execute(f"DELETE FROM {table} WHERE projection = %s", (projection,))

    # ---- positions --------------------------------------------------------------------

    def customer_positions(
        self, projection: str, customers: Iterable[str], *, lock: bool = False
    ) -> dict[str, int]:
        """Last applied global position per customer; with lock=True (PostgreSQL) the
        positions stay locked until commit, so a second writer handed the same events waits
        and then sees them applied instead of applying them again."""
        wanted = sorted(set(customers))
        found: dict[str, int] = {}
        if self.db.is_postgres:
            sql = (
                "SELECT customer_id, position FROM projection_customer_positions"
                " WHERE projection = %s AND customer_id = ANY(%b)"
            )
            if lock:
                result = self._select_locked(
                    sql + ' ORDER BY customer_id COLLATE "C" FOR UPDATE',  # = Python's order
                    "INSERT INTO projection_customer_positions (projection, customer_id,"
                    " position) SELECT %s, c, 0 FROM unnest(%b::text[]) AS c"
                    " ON CONFLICT (projection, customer_id) DO NOTHING",
                    projection,
                    wanted,
                )
            else:
                result = self.db.execute(sql, (projection, wanted)).fetchall()
            return {c: int(p) for c, p in result if int(p) > 0}
        for chunk in _chunks(wanted, 500):
            marks = ",".join(["%s"] * len(chunk))
            sql = (
                "SELECT customer_id, position FROM projection_customer_positions"
                f" WHERE projection = %s AND customer_id IN ({marks})"
            )
            result = self.db.execute(sql, (projection, *chunk)).fetchall()
            found.update({c: int(p) for c, p in result if int(p) > 0})
        return found

    def set_customer_positions(self, projection: str, positions: dict[str, int]) -> None:
        if self.db.is_postgres:
            self.db.execute(
                "INSERT INTO projection_customer_positions (projection, customer_id, position)"
                " SELECT %s, c, p FROM unnest(%b::text[], %b::bigint[]) AS r(c, p)"
                " ON CONFLICT (projection, customer_id) DO UPDATE SET position = excluded.position",
                (projection, list(positions), list(positions.values())),
            )
            return
        self.db.executemany(
            "INSERT INTO projection_customer_positions (projection, customer_id, position)"
            " VALUES (%s, %s, %s) ON CONFLICT (projection, customer_id)"
            " DO UPDATE SET position = excluded.position",
            [(projection, c, p) for c, p in positions.items()],
        )

    def position(self, projection: str) -> int:
        """The highest global position this projection has applied."""
        row = self.db.execute(
            "SELECT MAX(position) FROM projection_customer_positions WHERE projection = %s",
            (projection,),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def offsets(self, consumer: str, topic: str) -> dict[int, int]:
        result = self.db.execute(
            "SELECT partition_no, next_offset FROM projection_offsets"
            " WHERE consumer = %s AND topic = %s",
            (consumer, topic),
        ).fetchall()
        return {int(p): int(o) for p, o in result}

    def set_offsets(self, consumer: str, topic: str, offsets: dict[int, int]) -> None:
        self.db.executemany(
            "INSERT INTO projection_offsets (consumer, topic, partition_no, next_offset)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, topic, partition_no)"
            " DO UPDATE SET next_offset = excluded.next_offset",
            [(consumer, topic, p, o) for p, o in offsets.items()],
        )


_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _loads(doc: str) -> Any:
    """A stored document: orjson (~3x faster than json here), json for what only it reads
    (documents json.dumps wrote with NaN or an int beyond 64 bits)."""
    try:
        return orjson.loads(doc)
    except orjson.JSONDecodeError:
        return json.loads(doc)


def _dumps(row: Any) -> str:
    """A row's JSON document, keys sorted. orjson (~5x faster than json.dumps(sort_keys=True)
    on the rows here) writes it without spaces and non-ASCII unescaped; readers parse it to
    the same value. What orjson refuses (an int beyond 64 bits) goes to json."""
    try:
        return orjson.dumps(row, option=_SORTED).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(row, sort_keys=True)


def apply_events(store: RowStore, projection: Projection, events: Sequence[Event]) -> int:
    """Fold a batch into the stored rows (inside the caller's transaction).

    An event is applied only if its global position is past the last one applied for its
    customer: per customer, events arrive in order, so a re-published one is skipped.
    Returns the number of events applied.
    """
    seen = store.customer_positions(projection.name, (e["customer_id"] for e in events), lock=True)
    fresh: list[Event] = []
    for event in events:
        customer, position = event["customer_id"], event["global_position"]
        if position > seen.get(customer, 0):
            fresh.append(event)
            seen[customer] = position
    if not fresh:
        return 0
    prepared = prepare(projection, fresh)
    rows = store.load(projection.name, prepared.keys, lock=True)
    prepared.apply(rows)
    store.save(projection.name, {k: rows[k] for k in prepared.keys})
    store.set_customer_positions(
        projection.name, {e["customer_id"]: seen[e["customer_id"]] for e in fresh}
    )
    return len(fresh)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
