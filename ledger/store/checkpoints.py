"""The `audit_checkpoints` table (SPEC §13): one row per checkpoint, its JSON line as taken.
The use case (take, verify) is ledger/app/checkpoints.py."""

from __future__ import annotations

from typing import Any

from ledger.store.db import Database

CHECKPOINTS_TABLE = """
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    checkpoint_id TEXT PRIMARY KEY,
    taken_at TEXT NOT NULL,
    global_position BIGINT NOT NULL,
    merkle_root TEXT NOT NULL,
    line TEXT NOT NULL
)"""


class CheckpointStore:
    """The `audit_checkpoints` table: one row per checkpoint, its JSON line as taken."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.create_schema(CHECKPOINTS_TABLE)

    def add(self, checkpoint: dict[str, Any], line: str) -> None:
        self.db.execute(
            "INSERT INTO audit_checkpoints (checkpoint_id, taken_at, global_position,"
            " merkle_root, line) VALUES (%s, %s, %s, %s, %s)",
            (checkpoint["checkpoint_id"], checkpoint["taken_at"], checkpoint["global_position"],
             checkpoint["merkle_root"], line),
        )  # fmt: skip
        self.db.commit()

    def lines(self) -> list[tuple[str, str]]:
        """(where, JSON line) of every stored checkpoint, oldest first."""
        rows = self.db.execute(
            "SELECT checkpoint_id, line FROM audit_checkpoints ORDER BY taken_at, checkpoint_id"
        ).fetchall()
        self.db.commit()
        return [(f"database row {cid}", line) for cid, line in rows]
