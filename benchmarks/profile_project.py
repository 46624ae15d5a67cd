"""In-process projection throughput (no Kafka): the events of an ingested workload, in their
published form, folded by `apply_projections` into the read models of a fresh PostgreSQL
database in batches (one transaction each, as `ledger project` does), optionally under
cProfile. Prints the CPU per event of this process and of its PostgreSQL backends.

    .venv/bin/python benchmarks/profile_project.py [--messages 20000] [--customers 500]
        [--batch 2000] [--profile] [--dump FILE]
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
from ledger.app.views import PROJECTIONS  # noqa: E402
from ledger.store.db import Database  # noqa: E402
from ledger.store.eventstore import eventsourcing_env  # noqa: E402
from ledger.store.wire import Decoder  # noqa: E402
from projections.store import RowStore, apply_projections  # noqa: E402


def published_events(app: LedgerApplication) -> list[dict[str, object]]:
    """Every stored event as `ledger publish` sends it (personal fields revealed)."""
    decoder = Decoder(app.mapper)
    reveal = app.revealer()
    events: list[dict[str, object]] = []
    position = 0
    while batch := app.recorder.select_notifications(position + 1, 5000):
        bodies = [b for n in batch if (b := decoder.published(n)) is not None]
        reveal.prefetch(bodies)
        events.extend(map(reveal, bodies))
        position = batch[-1].id
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="with --profile: also save the stats here")
    args = parser.parse_args()
    with scratch_database("profile") as url:
        app = LedgerApplication(eventsourcing_env(url))
        messages = [*registrations(args.customers), *Activity(args.customers).take(args.messages)]
        records = [RawRecord(m.value, f"billing.{m.topic}", 0, i, m.key.encode())
                   for i, m in enumerate(messages)]  # fmt: skip
        for start in range(0, len(records), 1000):
            process_records(app, records[start : start + 1000])
        events = published_events(app)
        app.close()
        db = Database(url)
        store = RowStore(db)
        db.commit()
        projections = list(PROJECTIONS.values())
        applied = 0
        with measured(url, args.profile, args.dump, args.top) as m:
            for start in range(0, len(events), args.batch):
                applied += apply_projections(store, projections, events[start : start + args.batch])
                db.commit()
        n = len(events)
        print(f"{n} events in {m.elapsed:.2f} s: {n / m.elapsed:,.0f} events/s ({applied}"
              f" event-projection pairs){' under cProfile' if args.profile else ''}; CPU per"
              f" event: this process {m.cpu * 1e6 / n:.0f} µs, its PostgreSQL backend"
              f" {m.backends * 1e6 / n:.0f} µs")  # fmt: skip
        sizes = db.execute(
            "SELECT projection, count(*), avg(length(doc))::int, max(length(doc))"
            " FROM projection_rows GROUP BY projection ORDER BY 1"
        ).fetchall()
        shown = ", ".join(f"{p} {n:,} / {mean:,} / {top:,}" for p, n, mean, top in sizes)
        print(f"rows by projection (count, mean and largest document in bytes): {shown}")
        print(m.profile, end="")
        db.close()


if __name__ == "__main__":
    main()
