"""A plain DB-API connection to LEDGER_DATABASE_URL (SQLite or PostgreSQL), for the ledger's
own tables (dead letters, projections, positions). SQL is written with %s placeholders."""

from __future__ import annotations

import sqlite3
from typing import Any

from ledger.config import check_database_url
from ledger.store.eventstore import eventsourcing_env

SCHEMA_LOCK_ID = 0x1ED65C  # shared by every process that creates the ledger's own tables


class Database:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        check_database_url(database_url)  # one clear ConfigError, not a driver traceback
        env = eventsourcing_env(database_url)
        self.is_postgres = env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
        if self.is_postgres:
            import psycopg

            self.conn: Any = psycopg.connect(database_url, autocommit=False)
        else:
            path = env.get("SQLITE_DBNAME", ":memory:")
            self.conn = sqlite3.connect(path, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")

    def sql(self, statement: str) -> str:
        return statement if self.is_postgres else statement.replace("%s", "?")

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self.sql(statement), params)
        return cur

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        cur = self.conn.cursor()
        cur.executemany(self.sql(statement), rows)

    def create_schema(self, *statements: str) -> None:
        """Run CREATE … IF NOT EXISTS statements and commit. On PostgreSQL two processes
        starting at once would race on the catalog (a unique violation), so they take turns
        under an advisory lock."""
        if self.is_postgres:
            self.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
        for statement in statements:
            self.execute(statement)
        self.commit()

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()
