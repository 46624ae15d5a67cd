"""Dead letters kept in the database (no Kafka): the original bytes, where they came from,
and the typed reason. Nothing refused is ever lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.app.deadletters import DeadLetter
from ledger.store.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_deadletters (
    id {serial} PRIMARY KEY,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    source TEXT NOT NULL,
    partition_no INTEGER,
    offset_no BIGINT,
    record_key TEXT,
    raw TEXT NOT NULL,
    raw_encoding TEXT NOT NULL,
    created_at TEXT NOT NULL,
    replayed_at TEXT
)
"""


class DeadLetterStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        serial = "BIGSERIAL" if db.is_postgres else "INTEGER"
        db.create_schema(SCHEMA.format(serial=serial))

    def add(self, letters: list[DeadLetter]) -> None:
        now = datetime.now(UTC).isoformat()
        self.db.executemany(
            "INSERT INTO ledger_deadletters (code, message, source, partition_no, offset_no,"
            " record_key, raw, raw_encoding, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(d.code, d.message, d.source, d.partition, d.offset, d.key, d.raw, d.raw_encoding,
              now) for d in letters],
        )  # fmt: skip
        self.db.commit()

    def list(self, code: str | None = None, include_replayed: bool = True) -> list[DeadLetter]:
        sql = (
            "SELECT id, code, message, source, partition_no, offset_no, record_key, raw,"
            " raw_encoding, created_at, replayed_at FROM ledger_deadletters WHERE 1=1"
        )
        params: tuple[Any, ...] = ()
        if code:
            sql += " AND code = %s"
            params = (code,)
        if not include_replayed:
            sql += " AND replayed_at IS NULL"
        rows = self.db.execute(sql + " ORDER BY id", params).fetchall()
        self.db.commit()
        return [
            DeadLetter(id=r[0], code=r[1], message=r[2], source=r[3], partition=r[4], offset=r[5],
                       key=r[6], raw=r[7], raw_encoding=r[8], created_at=r[9], replayed_at=r[10])
            for r in rows
        ]  # fmt: skip

    def mark_replayed(self, ids: list[int]) -> None:
        now = datetime.now(UTC).isoformat()
        self.db.executemany(
            "UPDATE ledger_deadletters SET replayed_at = %s WHERE id = %s", [(now, i) for i in ids]
        )
        self.db.commit()
