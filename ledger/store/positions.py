"""Named positions in the event log (e.g. how far `ledger publish` has got), in the database."""

from __future__ import annotations

from ledger.store.db import Database


class PositionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.create_schema(
            "CREATE TABLE IF NOT EXISTS ledger_positions (name TEXT PRIMARY KEY, position BIGINT)"
        )

    def get(self, name: str) -> int:
        row = self.db.execute(
            "SELECT position FROM ledger_positions WHERE name = %s", (name,)
        ).fetchone()
        return int(row[0]) if row else 0

    def set(self, name: str, position: int) -> None:
        self.db.execute(
            "INSERT INTO ledger_positions (name, position) VALUES (%s, %s)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )
