"""Where billing's time goes: a generated Partner Center file billed in-process into a fresh
PostgreSQL database, twice (the second run: every line a duplicate), with the CPU time
(process_time, the figure that holds on a shared machine) and wall time of each stage per
line; optionally under cProfile (the first run's ingest only). With `--workers N`: the file billed
by N forked workers as `ledger bill partner-center --workers N` bills it
(ledger.app.billing_shards), with the writers' lock of the event store timed in every worker
(ledger.store.pgrecorder: one lock per transaction, from the events insert to the commit): how
long each batch waited for it and held it, and the share of the run it was held.

    .venv/bin/python benchmarks/profile_billing.py [--lines 20000] [--customers 200]
        [--profile] [--top 40] [--workers 2]

The stages are those of `ledger bill partner-center` in one process (ledger.app.billing
.bill_text): check the whole file (the first pass), then a batch at a time: parse its lines,
the charge ids, the customer lookup, pricing (plan_lines), the JSON of each message, then the
ingest path: validate (parse_object of the message billing made), decide (the accounts,
events and hash chain), save (events, decisions, one transaction).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import json
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.billing import BOOK  # noqa: E402
from benchmarks.support import percentile, scratch_database  # noqa: E402
from ledger.app import billing  # noqa: E402
from ledger.app.application import LedgerApplication  # noqa: E402
from ledger.app.ingest import RawRecord, _item, process_records  # noqa: E402
from ledger.app.reconcile import ReconReader, read_recon_text  # noqa: E402
from ledger.domain.pricebook import load_price_book  # noqa: E402
from ledger.process import tune_gc  # noqa: E402
from ledger.store.eventstore import eventsourcing_env  # noqa: E402
from tests.fixtures.recon_gen import generate  # noqa: E402


class Stages:
    """CPU and wall seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name][0] += time.process_time() - cpu
            self.seconds[name][1] += time.perf_counter() - wall

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return function(*args, **kwargs)

        return wrapper


def bill_once(app: LedgerApplication, raw: bytes, profiler: cProfile.Profile | None) -> None:
    stages = Stages()
    book = load_price_book(BOOK)
    cpu, wall = time.process_time(), time.perf_counter()
    with stages("check file"):  # the first pass: every line checked, only counts kept
        text = read_recon_text(raw)
        summary = billing.scan_file(text)
    tune_gc()  # as `ledger bill` does
    lookup = stages.timed("customer lookup", billing.lookup_from_registrations(app.registration))
    # The two halves of handle_batch, timed on this instance only.
    app._decide = stages.timed("decide", app._decide)  # type: ignore[method-assign]
    app.save = stages.timed("save", app.save)  # type: ignore[method-assign]
    ids = billing.ChargeIds(summary.invoice_number)
    applied = 0
    lines = iter(ReconReader(text).lines())
    while True:
        with stages("parse lines"):
            batch = list(itertools.islice(lines, billing.BATCH))
        if not batch:
            break
        with stages("charge ids"):
            batch_ids = [ids(line) for line in batch]
        with stages("price (+lookup)"):
            planned = billing.plan_lines(summary, book, lookup, batch, batch_ids, [])
        with stages("message JSON"):
            records = [billing._record(p, "bench") for p in planned]
        with stages("validate"):
            items = [_item(record) for record in records]
        if profiler:
            profiler.enable()
        result = app.handle_batch(items)
        if profiler:
            profiler.disable()
        applied += result.count("applied")
    count = summary.lines
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{count:,} lines, {applied:,} applied: CPU {cpu:.2f} s ({count / cpu:,.0f} lines/s "
          f"of CPU, {1e6 * cpu / count:.0f} us/line), wall {wall:.2f} s "
          f"({count / wall:,.0f} lines/s)")  # fmt: skip
    for name, (stage_cpu, stage_wall) in stages.seconds.items():
        print(f"  {name:16} CPU {1e6 * stage_cpu / count:6.1f} us/line   "
              f"wall {1e6 * stage_wall / count:6.1f} us/line")  # fmt: skip


LOCK_TIMES: list[tuple[float, float]] = []  # (waited, held) seconds of each transaction


def time_writers_lock() -> None:
    """Time the writers' lock in this process and the ones it forks (into LOCK_TIMES): from
    asking for it to having it, and from having it to the commit (insert_events returned)."""
    from ledger.store.pgrecorder import LedgerPostgresRecorder

    lock, insert = LedgerPostgresRecorder._lock_table, LedgerPostgresRecorder.insert_events
    acquired: list[float] = []

    def timed_lock(self: LedgerPostgresRecorder, curs: Any) -> None:
        asked = time.perf_counter()
        lock(self, curs)
        acquired.append(time.perf_counter())
        LOCK_TIMES.append((acquired[-1] - asked, 0.0))

    def timed_insert(self: LedgerPostgresRecorder, *args: Any, **kwargs: Any) -> Any:
        acquired.clear()
        result = insert(self, *args, **kwargs)
        if acquired:
            LOCK_TIMES[-1] = (LOCK_TIMES[-1][0], time.perf_counter() - acquired[-1])
        return result

    LedgerPostgresRecorder._lock_table = timed_lock  # type: ignore[method-assign]
    LedgerPostgresRecorder.insert_events = timed_insert  # type: ignore[method-assign]


def bill_in_workers(url: str, raw: bytes, workers: int, out: Path) -> None:
    """Bill the file on `workers` forked processes; print the run and the writers' lock."""
    from ledger.app.billing_shards import start_workers

    book = load_price_book(BOOK)
    cpu, wall = time.process_time(), time.perf_counter()
    text = read_recon_text(raw)
    summary = billing.scan_file(text, shards=workers)
    tune_gc()

    @contextmanager
    def store() -> Iterator[tuple[Any, Any, Any]]:
        app = LedgerApplication(eventsourcing_env(url))
        try:
            yield (
                billing.lookup_from_registrations(app.registration),
                lambda records: process_records(app, records),
                app.select_decisions,
            )
        finally:
            app.close()
            times = [*LOCK_TIMES, (os.times().user + os.times().system, -1.0)]
            (out / f"{os.getpid()}.json").write_text(json.dumps(times))

    report = start_workers(text, summary, book, store, workers=workers).collect()
    wall = time.perf_counter() - wall
    parent_cpu = time.process_time() - cpu
    waited, held, worker_cpu = [], [], 0.0
    for path in out.glob("*.json"):
        for first, second in json.loads(path.read_text()):
            if second < 0:
                worker_cpu += first
            else:
                waited.append(first)
                held.append(second)
    count = summary.lines
    cpu = parent_cpu + worker_cpu
    print(f"{count:,} lines, {report.billed:,} billed by {workers} workers: wall {wall:.2f} s "
          f"({count / wall:,.0f} lines/s), CPU {cpu:.2f} s ({1e6 * cpu / count:.0f} us/line; "
          f"the parent {1e6 * parent_cpu / count:.0f})")  # fmt: skip
    if held:
        print(f"  writers' lock: {len(held)} transactions, waited p50 "
              f"{1e3 * percentile(waited, 50):.1f} ms / max {1e3 * max(waited):.1f} ms, held "
              f"p50 {1e3 * percentile(held, 50):.1f} ms / max {1e3 * max(held):.1f} ms, held "
              f"{100 * sum(held) / wall:.0f} % of the run, waited for "
              f"{100 * sum(waited) / wall:.0f} %")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--workers", type=int, default=0, help="bill on N forked workers")
    args = parser.parse_args()
    scenario = generate(args.lines, args.customers, seed=16, deliberate=False)
    registrations = [m for m in scenario.messages if '"customer_registered"' in m]
    with scratch_database("profile_billing") as url:
        app = LedgerApplication(eventsourcing_env(url))
        process_records(app, [RawRecord(m, "customers") for m in registrations])
        if args.workers:
            app.close()
            time_writers_lock()
            with tempfile.TemporaryDirectory() as scratch:
                bill_in_workers(url, scenario.csv_bytes, args.workers, Path(scratch))
            return
        profiler = cProfile.Profile() if args.profile else None
        print("first run:")
        bill_once(app, scenario.csv_bytes, profiler)
        app.close()
        app = LedgerApplication(eventsourcing_env(url))  # a new process: nothing cached
        print("second run (every line a duplicate):")
        bill_once(app, scenario.csv_bytes, None)
        app.close()
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
