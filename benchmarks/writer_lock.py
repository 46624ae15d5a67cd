"""How long `ledger consume` holds the event store's writer lock per batch (in process, no
Kafka): the one thing all ingest processes take turns on, so it bounds ingest however many
processes or machines run it (docs/scaling.md: lock hold time per batch x batches/s).

    .venv/bin/python benchmarks/writer_lock.py [--messages 20000] [--customers 500]
        [--batch 1000] [--out result.json]

The hold time is from the moment `pg_advisory_xact_lock` returns to the commit of the
batch's transaction (the lock is released with it); measured by timing the recorder's own
calls on the real database.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import percentile, scratch_database  # noqa: E402
from benchmarks.workload import Activity, registrations  # noqa: E402
from ledger.app.application import LedgerApplication  # noqa: E402
from ledger.app.ingest import RawRecord, process_records  # noqa: E402
from ledger.store.eventstore import eventsourcing_env  # noqa: E402


def timed_recorder(recorder: Any, holds: list[float], waits: list[float]) -> None:
    """Wrap this recorder's lock and insert so each batch's wait and hold are recorded."""
    lock, insert = recorder._lock_table, recorder.insert_events
    acquired: list[float] = []

    def lock_table(curs: Any) -> None:
        asked = time.perf_counter()
        lock(curs)
        acquired.append(time.perf_counter())
        waits.append(acquired[-1] - asked)

    def insert_events(*args: Any, **kwargs: Any) -> Any:
        acquired.clear()
        result = insert(*args, **kwargs)
        if acquired:  # the transaction took the lock: it ended with the commit just now
            holds.append(time.perf_counter() - acquired[-1])
        return result

    recorder._lock_table = lock_table
    recorder.insert_events = insert_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    with scratch_database("writerlock") as url:
        app = LedgerApplication(eventsourcing_env(url))
        regs = registrations(args.customers)
        records = [RawRecord(m.value, "billing.customers", 0, i, m.key.encode())
                   for i, m in enumerate(regs)]  # fmt: skip
        for start in range(0, len(records), args.batch):
            process_records(app, records[start : start + args.batch])
        holds: list[float] = []
        waits: list[float] = []
        timed_recorder(app.recorder, holds, waits)
        activity = Activity(args.customers).take(args.messages)
        records = [RawRecord(m.value, f"billing.{m.topic}", 0, i, m.key.encode())
                   for i, m in enumerate(activity)]  # fmt: skip
        started = time.perf_counter()
        events = 0
        for start in range(0, len(records), args.batch):
            counts = process_records(app, records[start : start + args.batch])
            events += counts.applied
        elapsed = time.perf_counter() - started
        app.close()
    hold_ms = [h * 1000 for h in holds]
    mean = sum(hold_ms) / len(hold_ms)
    result = {
        "messages": args.messages, "batch": args.batch, "batches": len(holds),
        "seconds": elapsed, "msgs_per_s": args.messages / elapsed,
        "hold_ms": {"mean": mean, "p50": percentile(hold_ms, 50), "p99": percentile(hold_ms, 99)},
        "lock_share_of_time": sum(holds) / elapsed,
        # The lock alone would let this many batches (and messages) through per second.
        "lock_bound_batches_per_s": 1000 / mean,
        "lock_bound_msgs_per_s": args.batch * 1000 / mean,
    }  # fmt: skip
    print(f"{len(holds)} batches of {args.batch}: lock held {mean:.1f} ms mean "
          f"(p99 {result['hold_ms']['p99']:.1f} ms), {result['lock_share_of_time']:.0%} of the "
          f"time; one process {result['msgs_per_s']:,.0f} msg/s; the lock alone carries "
          f"{result['lock_bound_msgs_per_s']:,.0f} msg/s")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
