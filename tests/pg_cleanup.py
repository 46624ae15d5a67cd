"""Drops the test session's PostgreSQL databases after pytest has exited.

Each DROP DATABASE forces a checkpoint (PostgreSQL flushes every dirty buffer so the
checkpointer forgets the dropped files), ~0.2-1.3 s each: a session's ~200 databases took
over a minute at its end when dropped one by one in pytest. The session hands their names to
this process instead, started in its own session so it outlives pytest, which drops them a
few at a time (concurrent drops share checkpoints).

    python -m tests.pg_cleanup SERVER_URL DBNAME...
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent


def drop(server_url: str, dbname: str) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def drop_all(server_url: str, names: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(drop, server_url, name) for name in names]:
            future.result()


def drop_in_background(server_url: str, names: list[str]) -> None:
    """Start this module detached (its own session, no terminal) to drop `names`."""
    subprocess.Popen(
        [sys.executable, "-m", "tests.pg_cleanup", server_url, *names],
        cwd=ROOT, start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


if __name__ == "__main__":
    drop_all(sys.argv[1], sys.argv[2:])
