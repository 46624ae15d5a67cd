"""The audit's read of the event store (SPEC §13, `ledger audit verify|checkpoint`): every
stream's rows in stream and version order, split by stream id over a few processes, each
checked by the fast path of ledger/app/chainlinks.py.

Why it is shaped so (what a profile of the first version showed):
- PostgreSQL rows come by binary COPY, the stream id as text: no UUID objects, no
  notification objects, no page-by-page queries;
- the stream-id space is cut into equal ranges, one per process (stream ids are uuid5, spread
  evenly): each reads only its range of the primary key and checks whole streams, so a broken
  link is named by stream and position whichever process finds it;
- every row is read up to one global position, taken first: the heads found are the heads at
  that position, whichever process read them and whenever.
"""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import UUID

from ledger.app.chainlinks import ChainScan, EndRow, Row, check_rows
from ledger.process import usable_cores
from ledger.store.eventstore import eventsourcing_env

# Below this many events one process does it all: starting another costs more than it saves.
PARALLEL_FROM = 50_000


@dataclass(frozen=True)
class ScanTarget:
    """Where the events are, in a form a child process can open (picklable)."""

    kind: str  # "postgresql" | "sqlite"
    location: str  # the connection URL, or the SQLite file's path
    table: str  # the events table, quoted (schema-qualified on PostgreSQL)

    @classmethod
    def of(cls, database_url: str, recorder: Any) -> ScanTarget | None:
        """The target of an `eventsourcing` recorder opened on `database_url`; None when no
        other connection can read it (an in-memory store)."""
        env = eventsourcing_env(database_url)
        table = getattr(recorder, "events_table_name", None)
        if table is None:
            return None
        if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            return cls("postgresql", database_url, f'"{recorder.datastore.schema}"."{table}"')
        if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
            path = env["SQLITE_DBNAME"]
            if path == ":memory:" or "mode=memory" in path or path.startswith("file::memory:"):
                return None
            return cls("sqlite", path, f'"{table}"')
        return None

    def position(self) -> int:
        """The global position now (the last notification id; 0 for no event)."""
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.location) as conn:
                row = conn.execute(f"SELECT max(notification_id) FROM {self.table}").fetchone()
        else:
            with closing(_sqlite(self.location)) as db:
                row = db.execute(f"SELECT max(rowid) FROM {self.table}").fetchone()
        return int(row[0] or 0) if row else 0


def _sqlite(path: str) -> sqlite3.Connection:
    """Read-only: the audit never writes (a path's `?` or `#` quoted out of the URI)."""
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)


def bounds(shards: int) -> list[tuple[str | None, str | None]]:
    """`shards` equal ranges of the 128-bit stream-id space, as [low, high) UUID texts."""
    cuts = [str(UUID(int=(2**128 * k) // shards)) for k in range(1, shards)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))


def rows(target: ScanTarget, low: str | None, high: str | None, upto: int) -> Iterator[Row]:
    """The rows of the streams with id in [low, high) up to global position `upto`, in stream
    and version order."""
    if target.kind == "postgresql":
        import psycopg

        conditions = [f"notification_id <= {int(upto)}"]
        conditions += [f"originator_id >= '{UUID(low)}'::uuid"] if low else []
        conditions += [f"originator_id < '{UUID(high)}'::uuid"] if high else []
        query = (
            "COPY (SELECT e.originator_id::text, e.originator_version, e.topic, e.state"
            f" FROM {target.table} e WHERE {' AND '.join(conditions)}"
            " ORDER BY e.originator_id, e.originator_version) TO STDOUT (FORMAT BINARY)"
        )
        with psycopg.connect(target.location) as conn, conn.cursor() as cur:
            # The primary key gives the rows in order: a scan of the table and a sort of
            # them (the planner's pick for a range) spills the sort to disk for a big store.
            cur.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off;"
                        " SET LOCAL jit = off")  # fmt: skip
            with cur.copy(query) as copy:
                copy.set_types(["text", "int8", "text", "bytea"])
                yield from copy.rows()
        return
    conditions = ["rowid <= ?"] + ["originator_id >= ?"] * bool(low) + ["originator_id < ?"] * (
        bool(high)
    )  # fmt: skip
    params: list[Any] = [upto] + [UUID(b).hex for b in (low, high) if b]
    with closing(_sqlite(target.location)) as db:
        cursor = db.execute(
            "SELECT originator_id, originator_version, topic, state FROM"
            f" {target.table} WHERE {' AND '.join(conditions)}"
            " ORDER BY originator_id, originator_version",
            params,
        )
        while batch := cursor.fetchmany(10_000):
            yield from batch


def ends(target: ScanTarget, upto: int) -> list[EndRow]:
    """Every stream's first and newest events (and the one before the newest) up to global
    position `upto`: one query, three index lookups per stream, whatever the store's size."""
    pg = target.kind == "postgresql"
    position, sid, table = ("notification_id", "::text", target.table) if pg else (
        "rowid", "", target.table)  # fmt: skip
    query = (
        f"SELECT g.originator_id{sid}, g.lo, g.hi, h.topic, h.state, p.state, f.state FROM"
        f" (SELECT originator_id, min(originator_version) AS lo, max(originator_version) AS hi"
        f"  FROM {table} WHERE {position} <= {int(upto)} GROUP BY originator_id) g"
        f" JOIN {table} h ON h.originator_id = g.originator_id AND h.originator_version = g.hi"
        f" JOIN {table} f ON f.originator_id = g.originator_id AND f.originator_version = g.lo"
        f" LEFT JOIN {table} p ON p.originator_id = g.originator_id"
        "  AND p.originator_version = g.hi - 1"
    )
    if pg:
        import psycopg

        with psycopg.connect(target.location) as conn, conn.cursor(binary=True) as cur:
            cur.execute("SET LOCAL jit = off")
            cur.execute(query)
            return [(r[0], r[1], r[2], r[3], bytes(r[4]), None if r[5] is None else bytes(r[5]),
                     bytes(r[6])) for r in cur.fetchall()]  # fmt: skip
    with closing(_sqlite(target.location)) as db:
        return db.execute(query).fetchall()


def scan_range(
    target: ScanTarget, low: str | None, high: str | None, upto: int,
    wanted: Mapping[str, frozenset[int]],
) -> ChainScan:  # fmt: skip
    """One process's share: the chains of the streams with id in [low, high)."""
    return check_rows(rows(target, low, high, upto), wanted)


@dataclass(frozen=True)
class StoreScanner:
    """`ChainScanner` (ledger/app/checkpoints.py) over a store another connection can read."""

    target: ScanTarget
    workers: int | None = None  # None: one per core (one for a small store)

    @classmethod
    def of(cls, database_url: str, recorder: Any) -> StoreScanner | None:
        target = ScanTarget.of(database_url, recorder)
        return cls(target) if target else None

    def position(self) -> int:
        return self.target.position()

    def scan(self, wanted: Mapping[str, frozenset[int]], upto: int) -> ChainScan:
        return scan(self.target, wanted, upto, self.workers)

    def ends(self, upto: int) -> list[EndRow]:
        return ends(self.target, upto)


def processes() -> int:
    """How many processes a scan uses: one per core this process may run on (at most 8)."""
    return min(8, usable_cores())


def scan(
    target: ScanTarget,
    wanted: Mapping[str, frozenset[int]],
    upto: int,
    workers: int | None = None,
) -> ChainScan:
    """Every stream's chain up to global position `upto`: `workers` processes (default: one
    per core, one below `PARALLEL_FROM` events) each checking one range of stream ids, this
    process included. Raises ScanFailed when another process fails."""
    count = workers or (processes() if upto >= PARALLEL_FROM else 1)
    ranges = bounds(count)
    parts = [{sid: v for sid, v in wanted.items()
              if (low is None or sid >= low) and (high is None or sid < high)}
             for low, high in ranges]  # fmt: skip
    # The others are `python -m ledger.store.chainscan`: a multiprocessing child would import
    # the `ledger` command again (its whole CLI) before starting; this imports only the scan.
    children = [_start(target, low, high, upto, part)
                for (low, high), part in zip(ranges[1:], parts[1:], strict=True)]  # fmt: skip
    try:
        result = scan_range(target, *ranges[0], upto, parts[0])
        for child in children:
            result.merge(_result(child))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return result


class ScanFailed(RuntimeError):
    """A scan process failed (its error output is the message)."""


def _start(target: ScanTarget, low: str | None, high: str | None, upto: int,
           wanted: Mapping[str, frozenset[int]]) -> subprocess.Popen[bytes]:  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )  # its errors go to this command's stderr
    assert child.stdin is not None
    child.stdin.write(pickle.dumps((target, low, high, upto, dict(wanted))))
    child.stdin.close()
    return child


def _result(child: subprocess.Popen[bytes]) -> ChainScan:
    assert child.stdout is not None
    out = child.stdout.read()
    if child.wait() != 0:
        raise ScanFailed(f"a chain scan process exited {child.returncode} (its error above)")
    result = pickle.loads(out)  # our own child's answer
    assert isinstance(result, ChainScan)
    return result


if __name__ == "__main__":  # one range, asked for by `scan` on stdin (pickle), answered on stdout
    sys.stdout.buffer.write(pickle.dumps(scan_range(*pickle.loads(sys.stdin.buffer.read()))))
