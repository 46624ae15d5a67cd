"""What keeping the console's summary tables costs the projection writers (in-process, no
Kafka): `apply_projections` in batches over every event of a store, and a one-process
rebuild, each timed with the summary tables kept (as shipped) and without them (the raw limit:
the same code with `projections.summaries.save` made a no-op), alternated in the same run.

    eval "$(deploy/services up)"
    .venv/bin/python benchmarks/summaries_cost.py [--customers 2000] [--batch 2000]
        [--rounds 3] [--profile] [--top 40] [--compare OTHER/projections/summaries.py]

The store is benchmarks/console.py's (2,000 customers: ~17,000 events), in a scratch
PostgreSQL database (dropped at the end). Each apply round starts from empty projection
tables. CPU: this process's own and its PostgreSQL backend's (from /proc: the server must run
on this machine). --compare times another version of projections/summaries.py (e.g. a
checkout of main's) as a third writer, alternated with the two others. --profile runs one more
apply pass with summaries under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
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
def writer(save: Callable[..., None] | None) -> Iterator[None]:
    """`save` (None: the summary tables are not written, the raw limit) in place of
    projections.summaries.save."""
    kept = summaries.save
    summaries.save = save or (lambda *args, **kwargs: None)
    try:
        yield
    finally:
        summaries.save = kept


def server_cpu(db: Database) -> float:
    """CPU seconds of this connection's PostgreSQL backend so far."""
    pid = db.conn.info.backend_pid
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def other_save(path: str) -> Callable[..., None]:
    spec = importlib.util.spec_from_file_location("other_summaries", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save: Callable[..., None] = module.save
    return save


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
    parser.add_argument("--compare", help="another projections/summaries.py to time too")
    args = parser.parse_args()
    configure_logging("profile", "warning")
    with scratch_database("project") as url:
        app = build_store(url, args.customers)
        db = Database(url)
        RowStore(db)  # the schema, summary tables included
        events = read_events(app)
        n = len(events)
        print(f"store: {args.customers} customers, {n} events", file=sys.stderr)
        writers: dict[str, Callable[..., None] | None] = {"raw": None, "summaries": summaries.save}
        if args.compare:
            writers["compared"] = other_save(args.compare)
        apply: dict[str, list[tuple[float, float, float]]] = {name: [] for name in writers}
        rebuilt: dict[str, list[float]] = {name: [] for name in writers}
        for _ in range(args.rounds):
            for name, save in writers.items():
                with writer(save):
                    empty(db)
                    cpu, server = time.process_time(), server_cpu(db)
                    seconds = apply_all(db, events, args.batch)
                    apply[name].append(
                        (seconds, time.process_time() - cpu, server_cpu(db) - server)
                    )
                    began = time.perf_counter()
                    rebuild(app, db)
                    rebuilt[name].append(time.perf_counter() - began)
        raw_apply = statistics.median(s for s, _, _ in apply["raw"])
        raw_rebuild = statistics.median(rebuilt["raw"])
        print("| writer | apply events/s | x raw | client CPU s | PostgreSQL CPU s | rebuild s "
              "| x raw |\n|---|---|---|---|---|---|---|")  # fmt: skip
        for name in writers:
            seconds = statistics.median(s for s, _, _ in apply[name])
            client = statistics.median(c for _, c, _ in apply[name])
            server = statistics.median(p for _, _, p in apply[name])
            again = statistics.median(rebuilt[name])
            print(f"| {name} | {n / seconds:,.0f} | {raw_apply / seconds:.2f} | {client:.2f} | "
                  f"{server:.2f} | {again:.2f} | {raw_rebuild / again:.2f} |")  # fmt: skip
        print(f"medians of {args.rounds}; load average {os.getloadavg()}")
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
