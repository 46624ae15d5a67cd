"""Where customers' data keys are kept (SPEC §13): table `customer_keys`, apart from the
events, in the ledger's database by default or in another one (LEDGER_KEYS_DATABASE_URL).

One row per customer: `key_id`, the AES-256 key (hex), when it was made, and once erased
`key_hex` NULL and `erased_at` (a tombstone: personal data that arrives later is stored as
`[erased]`, and a missing row is never mistaken for an erasure). One connection per store,
used under a lock and committed after every call (no lock is held while the event store
writes); a call that fails drops it and the next one opens a new one.

The SQLite file is opened by SQLite only, never by Python's `open()`: closing any other
descriptor of the file drops the POSIX locks of the event store's connection in this process,
and another process may then reset the WAL under it ("database disk image is malformed").
So no `Database(url)` here, whose URL check reads the file's header.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from threading import Lock
from typing import Any
from urllib.parse import quote

from ledger.domain.ids import normalize_id
from ledger.domain.personal import CustomerKey, new_key
from ledger.store.db import SCHEMA_LOCK_ID
from ledger.store.eventstore import eventsourcing_env

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS customer_keys (
        customer_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, key_hex TEXT,
        created_at TEXT NOT NULL, erased_at TEXT)""",
)
_CHUNK = 500


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _row(customer_id: str, key_id: str, key_hex: str | None, erased_at: str | None) -> CustomerKey:
    key = bytes.fromhex(key_hex) if key_hex is not None else None
    return CustomerKey(customer_id, key_id, key, erased_at)


class _Connection:
    """A DB-API connection with the ledger's `%s` placeholders on SQLite too."""

    def __init__(self, url: str) -> None:
        env = eventsourcing_env(url)
        self.is_postgres = env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
        if self.is_postgres:
            import psycopg

            self.conn: Any = psycopg.connect(url, autocommit=False)
            # Two processes creating the table at once take turns (as Database does).
            self.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        else:
            path = env.get("SQLITE_DBNAME", ":memory:")
            self.conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            self.execute(statement)
        self.conn.commit()

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        sql = statement if self.is_postgres else statement.replace("%s", "?")
        cur = self.conn.cursor()
        cur.execute(sql, params)
        return cur

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        sql = statement if self.is_postgres else statement.replace("%s", "?")
        self.conn.cursor().executemany(sql, rows)


class DatabaseKeyStore:
    """`customer_keys` in the SQLite or PostgreSQL database at `url`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: _Connection | None = None
        self._lock = Lock()

    @contextmanager
    def _db(self) -> Iterator[_Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = _Connection(self.url)
            db = self._conn
            try:
                yield db
                db.conn.commit()
            except BaseException:
                self._conn = None  # it may be broken: the next call reconnects
                with suppress(Exception):
                    db.conn.close()
                raise

    def _select(self, db: _Connection, ids: list[str]) -> dict[str, CustomerKey]:
        found: dict[str, CustomerKey] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join(["%s"] * len(chunk))
            for row in db.execute(
                "SELECT customer_id, key_id, key_hex, erased_at FROM customer_keys"
                f" WHERE customer_id IN ({marks})",
                tuple(chunk),
            ).fetchall():
                found[row[0]] = _row(*row)
        return found

    def get(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        """The keys (or tombstones) of these customers; a customer without a row is absent."""
        ids = sorted({normalize_id(c) for c in customer_ids})
        if not ids:
            return {}
        with self._db() as db:
            return self._select(db, ids)

    def get_all(self) -> dict[str, CustomerKey]:
        with self._db() as db:
            rows = db.execute(
                "SELECT customer_id, key_id, key_hex, erased_at FROM customer_keys"
            ).fetchall()
        return {row[0]: _row(*row) for row in rows}

    def get_or_create(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        """Every customer's key, a new one made for those without a row (concurrent callers
        agree: the first insert wins). An erased customer keeps the tombstone."""
        ids = sorted({normalize_id(c) for c in customer_ids})
        if not ids:
            return {}
        with self._db() as db:
            found = self._select(db, ids)
            missing = [new_key(c) for c in ids if c not in found]
            if missing:
                now = _now()
                db.executemany(
                    "INSERT INTO customer_keys (customer_id, key_id, key_hex, created_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (customer_id) DO NOTHING",
                    [(k.customer_id, k.key_id, (k.key or b"").hex(), now) for k in missing],
                )
                found.update(self._select(db, [k.customer_id for k in missing]))
        return found

    def destroy(self, customer_id: str) -> bool:
        """Overwrite the customer's key with NULL (a tombstone when there was no key).
        True when a key was destroyed now, False when it already was."""
        cid = normalize_id(customer_id)
        with self._db() as db:
            done = db.execute(
                "UPDATE customer_keys SET key_hex = NULL, erased_at = %s"
                " WHERE customer_id = %s AND key_hex IS NOT NULL",
                (_now(), cid),
            ).rowcount
            if not done:
                db.execute(
                    "INSERT INTO customer_keys (customer_id, key_id, key_hex, created_at,"
                    " erased_at) VALUES (%s, %s, NULL, %s, %s)"
                    " ON CONFLICT (customer_id) DO NOTHING",
                    (cid, "none", _now(), _now()),
                )
        return bool(done)


class MemoryKeyStore:
    """The same in memory: for `memory://` stores (tests) and SQLite's `:memory:`."""

    def __init__(self) -> None:
        self.rows: dict[str, CustomerKey] = {}
        self._lock = Lock()

    def get(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        ids = {normalize_id(c) for c in customer_ids}
        return {c: k for c, k in self.rows.items() if c in ids}

    def get_all(self) -> dict[str, CustomerKey]:
        return dict(self.rows)

    def get_or_create(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]:
        with self._lock:
            for customer_id in {normalize_id(c) for c in customer_ids}:
                self.rows.setdefault(customer_id, new_key(customer_id))
        return self.get(customer_ids)

    def destroy(self, customer_id: str) -> bool:
        cid = normalize_id(customer_id)
        with self._lock:
            key = self.rows.get(cid)
            if key is not None and key.erased:
                return False
            self.rows[cid] = CustomerKey(cid, key.key_id if key else "none", None, _now())
            return key is not None


def key_store_for_env(env: Mapping[str, str]) -> DatabaseKeyStore | MemoryKeyStore:
    """The key store of an application built from its `eventsourcing` environment: the
    database in `KEYS_DATABASE_URL` when set (ledger.bootstrap sets it from
    LEDGER_KEYS_DATABASE_URL), else a `customer_keys` table in the event store's database."""
    url = env.get("KEYS_DATABASE_URL")
    if url:
        return DatabaseKeyStore(url)
    module = env.get("PERSISTENCE_MODULE", "")
    if module == "eventsourcing.sqlite":
        path = env.get("SQLITE_DBNAME", ":memory:")
        if path == ":memory:" or "mode=memory" in path:
            return MemoryKeyStore()  # another connection would see another database
        return DatabaseKeyStore(f"sqlite:///{path}")
    if module == "eventsourcing.postgres":
        user = quote(env.get("POSTGRES_USER", "ledger"), safe="")
        password = quote(env.get("POSTGRES_PASSWORD", ""), safe="")
        host, port = env.get("POSTGRES_HOST", "127.0.0.1"), env.get("POSTGRES_PORT", "5432")
        return DatabaseKeyStore(
            f"postgresql://{user}:{password}@{host}:{port}/{env.get('POSTGRES_DBNAME', 'ledger')}"
        )
    return MemoryKeyStore()
