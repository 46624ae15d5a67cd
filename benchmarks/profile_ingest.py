"""In-process ingest throughput (no Kafka): `process_records` over a fresh PostgreSQL database,
optionally under cProfile. The quick way to see what an optimisation of the application
buys, and where the time goes.

    .venv/bin/python benchmarks/profile_ingest.py [--messages 20000] [--customers 500]
        [--batch 1000] [--profile] [--dump FILE] [--env KEY=VALUE ...]

Besides the rate it prints the CPU spent per message by this process and by its PostgreSQL
backends (read from /proc, so PostgreSQL must run on this machine): on a shared machine the
rate follows the CPU share the process gets, the CPU per message does not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import measured, scratch_database  # noqa: E402
from benchmarks.workload import Activity, registrations  # noqa: E402
from ledger.app.application import LedgerApplication  # noqa: E402
from ledger.app.ingest import RawRecord, process_records  # noqa: E402
from ledger.process import tune_gc  # noqa: E402
from ledger.store.eventstore import eventsourcing_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="with --profile: also save the stats here")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    with scratch_database("profile") as url:
        app = LedgerApplication({**eventsourcing_env(url), **extra})
        regs = registrations(args.customers)
        records = [RawRecord(m.value, "billing.customers", 0, i, m.key.encode())
                   for i, m in enumerate(regs)]  # fmt: skip
        for start in range(0, len(records), args.batch):
            process_records(app, records[start : start + args.batch])
        activity = Activity(args.customers).take(args.messages)
        records = [RawRecord(m.value, f"billing.{m.topic}", 0, i, m.key.encode())
                   for i, m in enumerate(activity)]  # fmt: skip
        applied = 0
        tune_gc()  # as `ledger consume` does
        with measured(url, args.profile, args.dump, args.top) as m:
            for start in range(0, len(records), args.batch):
                counts = process_records(app, records[start : start + args.batch])
                applied += counts.applied
                assert not counts.dead_letters, counts.dead_letters[0]
        n = args.messages
        print(
            f"{n} messages in {m.elapsed:.2f} s: {n / m.elapsed:,.0f} msg/s (applied {applied})"
            f"{' under cProfile' if args.profile else ''}; CPU per message: this process"
            f" {m.cpu * 1e6 / n:.0f} µs, its PostgreSQL backends {m.backends * 1e6 / n:.0f} µs"
        )
        print(m.profile, end="")
        app.close()


if __name__ == "__main__":
    main()
