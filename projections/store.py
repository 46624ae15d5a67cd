"""Projection rows in the database (PostgreSQL in production, SQLite works too).

One table of JSON rows per (projection, key); per customer, the last global position each
projection applied (one row per customer: {projection: position}), so a re-published event
is never counted twice; the highest position each projection applied (its head, for
status); and the Kafka offsets consumed — all written in the caller's transaction, together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ledger.store.db import SCHEMA_LOCK_ID, Database
from projections import summaries
from projections.base import Event, Projection, Rows, prepare

# Projections whose every row belongs to one customer (each key names the event's customer):
# two projectors never write the same row of theirs (a customer is in one partition). The
# others (journal, remittance, microsoft) have rows every projector's batch writes.
PER_CUSTOMER = frozenset({"accounts", "support", "margin"})

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS projection_rows (
        projection TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (projection, key))""",
    # One row per customer, not per (projection, customer): a projector locks and writes
    # each customer of a batch once for all projections (4x fewer rows than before).
    """CREATE TABLE IF NOT EXISTS projection_positions (
        customer_id TEXT PRIMARY KEY, positions TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS projection_heads (
        projection TEXT PRIMARY KEY, position BIGINT NOT NULL)""",
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
            db.create_schema(*SCHEMA, *summaries.schema(db.is_postgres))
            self._backfill_summaries()

    def _backfill_summaries(self) -> None:
        """A store made before the summary tables (or an older version of them) gets them
        filled from its stored rows, once: every process that opens the store checks."""
        if _summary_version(self.db) >= summaries.VERSION:
            self.db.commit()
            return
        if self.db.is_postgres:  # one process fills them; projectors wait (as for a rebuild)
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            self.db.execute("LOCK TABLE projection_positions IN EXCLUSIVE MODE")
            if _summary_version(self.db) >= summaries.VERSION:
                self.db.commit()
                return
        try:  # made again: an older version's tables may lack a column
            for table in summaries.tables():
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in summaries.schema(self.db.is_postgres):
                self.db.execute(statement)
            for name in summaries.SUMMARISED:
                summaries.save(self.db, name, self.load_all(name))
            self.db.execute("DELETE FROM summary_versions WHERE name = 'summaries'")
            self.db.execute(
                "INSERT INTO summary_versions (name, version) VALUES ('summaries', %s)",
                (summaries.VERSION,),
            )
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise

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
        self, select: str, create: str, projection: str | None, wanted: list[str]
    ) -> list[tuple[str, Any]]:
        """(key, value) of the wanted rows, locked until commit, in key order. Rows that do
        not exist yet are created first (placeholders, by `create`) and then locked too, so
        that two processes creating the same row serialise on it instead of racing.

        Existing rows are locked first, then the new ones: one statement when nothing is
        new, as in a steady stream. Two writers that each create a row the other then
        wants can deadlock; PostgreSQL aborts one (an OperationalError: its batch is rolled
        back and retried, as after an outage)."""
        scope = () if projection is None else (projection,)
        found: list[tuple[str, Any]] = self.db.execute(select, (*scope, wanted)).fetchall()
        if len(found) < len(wanted):
            have = {key for key, _ in found}
            missing = [key for key in wanted if key not in have]
            self.db.execute(create, (*scope, missing))
            found += self.db.execute(select, (*scope, missing)).fetchall()
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
        else:
            self.db.executemany(
                "INSERT INTO projection_rows (projection, key, doc) VALUES (%s, %s, %s)"
                " ON CONFLICT (projection, key) DO UPDATE SET doc = excluded.doc",
                [(projection, k, d) for k, d in docs],
            )
        summaries.save(self.db, projection, rows)  # with the rows they summarise

    def copy_docs(
        self, projection: str, docs: Sequence[tuple[str, str]], rows: Rows | None = None
    ) -> None:
        """Add rows given as (key, JSON document) that do not exist yet (a rebuild, after
        `clear`): COPY on PostgreSQL, the bulk path (a conflict fails the transaction).
        `rows`: the same rows as objects, when at hand (else the summaries parse `docs`)."""
        if projection in summaries.SUMMARISED:
            made = rows if rows is not None else {k: _loads(d) for k, d in docs}
            summaries.save(self.db, projection, made)
        if not self.db.is_postgres:
            self.db.executemany(
                "INSERT INTO projection_rows (projection, key, doc) VALUES (%s, %s, %s)",
                [(projection, k, d) for k, d in docs],
            )
            return
        with (
            self.db.conn.cursor() as cursor,
            cursor.copy("COPY projection_rows (projection, key, doc) FROM STDIN") as copy,
        ):
            for key, doc in docs:
                copy.write_row((projection, key, doc))

    def clear(self, projection: str) -> None:
        """Forget a projection: its rows, head and customer positions (other projections'
        positions stay)."""
        for table in ("projection_rows", "projection_heads"):
            self.db.execute(f"DELETE FROM {table} WHERE projection = %s", (projection,))
        summaries.clear(self.db, projection)
        stored = self.db.execute("SELECT customer_id, positions FROM projection_positions")
        changed = {}
        for customer, doc in stored.fetchall():
            positions = _loads(doc)
            if positions.pop(projection, None) is not None:
                changed[customer] = positions
        self.store_positions(changed)

    # ---- positions --------------------------------------------------------------------

    def positions(
        self, customers: Iterable[str], *, lock: bool = False
    ) -> dict[str, dict[str, int]]:
        """Per customer, the last global position each projection applied. With lock=True
        (PostgreSQL) they stay locked until commit, so a second writer handed the same events
        waits and then sees them applied instead of applying them again. Customers without
        positions are absent."""
        wanted = sorted(set(customers))
        if self.db.is_postgres:
            sql = (
                "SELECT customer_id, positions FROM projection_positions"
                " WHERE customer_id = ANY(%b)"
            )
            if lock:
                found = self._select_locked(
                    sql + ' ORDER BY customer_id COLLATE "C" FOR UPDATE',  # = Python's order
                    "INSERT INTO projection_positions (customer_id, positions)"
                    " SELECT c, '{}' FROM unnest(%b::text[]) AS c"
                    " ON CONFLICT (customer_id) DO NOTHING",
                    None,
                    wanted,
                )
            else:
                found = self.db.execute(sql, (wanted,)).fetchall()
        else:
            found = []
            for chunk in _chunks(wanted, 500):
                marks = ",".join(["%s"] * len(chunk))
                found += self.db.execute(
                    "SELECT customer_id, positions FROM projection_positions"
                    f" WHERE customer_id IN ({marks})",
                    tuple(chunk),
                ).fetchall()
        return {customer: _loads(doc) for customer, doc in found if doc != "{}"}

    def store_positions(self, positions: dict[str, dict[str, int]]) -> None:
        """Write these customers' positions (whole: merge with `positions()` first)."""
        docs = [(c, _dumps(p)) for c, p in positions.items()]
        if self.db.is_postgres:
            self.db.execute(
                "INSERT INTO projection_positions (customer_id, positions)"
                " SELECT c, p FROM unnest(%b::text[], %b::text[]) AS r(c, p)"
                " ON CONFLICT (customer_id) DO UPDATE SET positions = excluded.positions",
                ([c for c, _ in docs], [p for _, p in docs]),
            )
            return
        self.db.executemany(
            "INSERT INTO projection_positions (customer_id, positions) VALUES (%s, %s)"
            " ON CONFLICT (customer_id) DO UPDATE SET positions = excluded.positions",
            docs,
        )

    def customer_positions(
        self, projection: str, customers: Iterable[str], *, lock: bool = False
    ) -> dict[str, int]:
        """Last global position `projection` applied, per customer (those with one)."""
        stored = self.positions(customers, lock=lock)
        return {c: p[projection] for c, p in stored.items() if p.get(projection, 0) > 0}

    def set_customer_positions(self, projections: Sequence[str], positions: dict[str, int]) -> None:
        """Set these projections' positions of these customers (a rebuild)."""
        stored = self.positions(positions, lock=True)
        for customer, position in positions.items():
            doc = stored.setdefault(customer, {})
            for projection in projections:
                doc[projection] = position
        self.store_positions(stored)

    def position(self, projection: str) -> int:
        """The highest global position this projection has applied."""
        row = self.db.execute(
            "SELECT position FROM projection_heads WHERE projection = %s", (projection,)
        ).fetchone()
        return int(row[0]) if row else 0

    def advance_heads(self, heads: dict[str, int]) -> None:
        """Raise each projection's head to this position (never lower it)."""
        self.db.executemany(
            "INSERT INTO projection_heads (projection, position) VALUES (%s, %s)"
            " ON CONFLICT (projection) DO UPDATE SET position = CASE"
            " WHEN excluded.position > projection_heads.position THEN excluded.position"
            " ELSE projection_heads.position END",
            sorted(heads.items()),
        )

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


def _summary_version(db: Database) -> int:
    found = db.execute("SELECT version FROM summary_versions WHERE name = 'summaries'").fetchone()
    return int(found[0]) if found else 0


_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def parse_doc(doc: str) -> Any:
    """A stored row's document (`doc` column), None for a placeholder row ('null')."""
    return None if doc == "null" else _loads(doc)


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
    """apply_projections for one projection."""
    return apply_projections(store, [projection], events)


def apply_projections(
    store: RowStore, projections: Sequence[Projection], events: Sequence[Event]
) -> int:
    """Fold a batch into the stored rows of each projection (inside the caller's
    transaction). Returns the number of (event, projection) pairs applied.

    An event is applied to a projection only if its global position is past the last one
    that projection applied for its customer: per customer, events arrive in order, so a
    re-published one is skipped. The customers' positions are locked first (all
    projections at once), then the rows of each projection whose rows are shared across
    customers (journal, remittance, microsoft).
    """
    stored = store.positions((e["customer_id"] for e in events), lock=True)
    changed: dict[str, dict[str, int]] = {}
    heads: dict[str, int] = {}
    applied = 0
    # Which events each projection has not applied yet, worked out once per distinct set of
    # stored positions: the projections advance together, so usually once for all of them.
    selections: list[_Fresh] = []
    # The rows shared across customers last: their locks, which every other projector's
    # batch waits for, are then held from near the end of the batch to its commit, not
    # through the per-customer projections' work. (Same order in every projector: no
    # deadlock.)
    for projection in sorted(projections, key=lambda p: p.name not in PER_CUSTOMER):
        name = projection.name
        before = {c: p[name] for c, p in stored.items() if name in p}
        selection = next((s for s in selections if s.before == before), None)
        if selection is None:
            selection = _Fresh(before, events)
            selections.append(selection)
        if not selection.events:
            continue
        prepared = prepare(projection, selection.events)
        # A per-customer row is written only in a batch that holds its customer's positions
        # row locked (above; a rebuild locks the whole positions table): locking the row as
        # well would only cost a tuple lock per row (and, for a new row, a placeholder
        # insert and a second select). The rows every projector writes are locked.
        rows = store.load(name, prepared.keys, lock=name not in PER_CUSTOMER)
        prepared.apply(rows)
        store.save(name, {k: rows[k] for k in prepared.keys})
        for customer, position in selection.advanced.items():
            changed.setdefault(customer, stored.setdefault(customer, {}))[name] = position
        heads[name] = selection.top
        applied += len(selection.events)
    if changed:
        store.store_positions(changed)
        store.advance_heads(heads)
    return applied


class _Fresh:
    """The events of a batch past given per-customer positions (`before`), in batch order:
    per customer, each past the last one taken, so a re-published event is skipped even
    within the batch. `advanced`: the customers' new last positions; `top`: the highest."""

    def __init__(self, before: dict[str, int], events: Sequence[Event]) -> None:
        self.before = before
        seen = dict(before)
        fresh: list[Event] = []
        for event in events:
            customer, position = event["customer_id"], event["global_position"]
            if position > seen.get(customer, 0):
                fresh.append(event)
                seen[customer] = position
        self.events = fresh
        self.advanced = {c: p for c, p in seen.items() if before.get(c) != p}
        self.top = max(self.advanced.values(), default=0)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
