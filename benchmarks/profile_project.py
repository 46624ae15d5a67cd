"""What keeping the console's summary tables costs the projection writers (in-process, no
Kafka): `apply_projections` in batches over every event of a store, and a one-process
rebuild, each timed with the summary tables kept (as shipped) and without them (the raw limit:
the same code with `projections.summaries.save` made a no-op), alternated in the same run.

    eval "$(deploy/services up)"
    .venv/bin/python benchmarks/profile_project.py [--customers 2000] [--batch 2000]
        [--rounds 3] [--profile] [--top 40]

The store is benchmarks/console.py's (2,000 customers: ~17,000 events), in a scratch
PostgreSQL database (dropped at the end). Each apply round starts from empty projection
tables. --profile runs one more apply pass with summaries under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.console import build_store  # noqa: E402
from benchmarks.support import scratch_database  # noqa: E402
from ledger.app.views import PROJECTIONS  # noqa: E402
from ledger.logs import configure_logging  # noqa: E402
from ledger.store.db import Database  # noqa: E402
from ledger.store.readmodels import rebuild  # noqa: E402
from ledger.store.wire import Decoder  # noqa: E402
from projections import summaries  # noqa: E402
from projections.base import Event  # noqa: E402
from projections.store import RowStore, apply_projections  # noqa: E402

_TABLES = ("projection_rows", "projection_positions", "projection_heads", *summaries.tables())


@contextmanager
def summaries_off(off: bool) -> Iterator[None]:
    """With off=True, the summary tables are not written (the raw limit of the writers)."""
    kept = summaries.save
    if off:
        summaries.save = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        yield
    finally:
        summaries.save = kept  # type: ignore[assignment]


def empty(db: Database) -> None:
    for table in _TABLES:
        db.execute(f"DELETE FROM {table}")
    db.commit()


def apply_all(db: Database, events: list[Event], batch: int) -> float:
    """Seconds to apply every event in batches, one transaction each (as `ledger project`)."""
    store = RowStore(db)
    projections = list(PROJECTIONS.values())
    began = time.perf_counter()
    for start in range(0, len(events), batch):
        apply_projections(store, projections, events[start : start + batch])
        db.commit()
    return time.perf_counter() - began


def read_events(app: Any) -> list[Event]:
    """Every stored event in its SPEC §5 form (as a rebuild reads them)."""
    decoder = Decoder(app.mapper, event_ids=False)
    reveal = app.revealer(everything=True)
    out = []
    for notification in app.notifications(start=1, page=5000):
        event = decoder.published(notification)
        if event is not None:
            out.append(reveal(event))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    configure_logging("profile", "warning")
    with scratch_database("project") as url:
        app = build_store(url, args.customers)
        db = Database(url)
        RowStore(db)  # the schema, summary tables included
        events = read_events(app)
        n = len(events)
        print(f"store: {args.customers} customers, {n} events", file=sys.stderr)
        timings: dict[str, list[float]] = {k: [] for k in ("apply raw", "apply", "rebuild raw",
                                                           "rebuild")}  # fmt: skip
        for _ in range(args.rounds):
            for off in (True, False):
                suffix = " raw" if off else ""
                with summaries_off(off):
                    empty(db)
                    timings["apply" + suffix].append(apply_all(db, events, args.batch))
                    began = time.perf_counter()
                    rebuild(app, db)
                    timings["rebuild" + suffix].append(time.perf_counter() - began)
        for name, seconds in timings.items():
            best, median = min(seconds), statistics.median(seconds)
            rate = f", {n / median:,.0f} events/s (median)" if name.startswith("apply") else ""
            print(f"{name}: best {best:.2f} s, median {median:.2f} s{rate}")
        ratio: Callable[[str], float] = lambda kind: (  # noqa: E731
            statistics.median(timings[kind + " raw"]) / statistics.median(timings[kind])
        )
        print(f"with summaries / raw (events/s): apply x{ratio('apply'):.2f}, "
              f"rebuild x{ratio('rebuild'):.2f}; load average {os.getloadavg()}")  # fmt: skip
        if args.profile:
            empty(db)
            profiler = cProfile.Profile()
            profiler.enable()
            apply_all(db, events, args.batch)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats("summaries|store.py", args.top)
            stats.sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
        db.close()
        app.close()


if __name__ == "__main__":
    main()
