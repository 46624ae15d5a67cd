"""The scaling curve on this machine: ingest by 1, 2 and 4 `ledger consume`, projection by
1, 2 and 4 `ledger project` (each set in one consumer group over 4 partitions), next to
kafka-python's raw consume of the same topics, with each process's CPU and the event
store's writer lock (benchmarks/writer_lock.py) to show what saturates first.

    eval "$(deploy/services up)"
    .venv/bin/python benchmarks/scaling.py [--customers 2000] [--messages 60000]

Writes benchmarks/results/scaling.json and prints a table (docs/scaling.md has the reading).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.run import (  # noqa: E402
    LEDGER,
    PYTHON,
    QUICK,
    RESULTS,
    Run,
    log,
    projected,
    publish_position,
    sql,
    wait_until,
)
from benchmarks.support import Child, machine, services_cpu_seconds  # noqa: E402
from benchmarks.workload import registrations  # noqa: E402

COUNTS = (1, 2, 4)
PROJECTION_TABLES = ("projection_rows", "projection_positions", "projection_heads",
                     "projection_offsets")  # fmt: skip


def sampler(children: list[Child]) -> Callable[[], None]:
    def sample() -> None:
        for child in children:
            child.sample()

    return sample


def cores(children: list[Child], before: dict[str, float], wall: float,
          services_before: dict[str, float]) -> dict[str, float]:  # fmt: skip
    """CPU of each process and service over the wall time, in cores."""
    out = {c.name: round(((c.cpu or 0.0) - before.get(c.name, 0.0)) / wall, 2)
           for c in children}  # fmt: skip
    for service, seconds in services_cpu_seconds().items():
        out[service] = round((seconds - services_before[service]) / wall, 2)
    return out


def cpu_now(children: list[Child]) -> dict[str, Any]:
    """CPU seconds so far of each child and of the services (the start of a measured span)."""
    for child in children:
        child.sample()
    return {"processes": {c.name: c.cpu or 0.0 for c in children},
            "services": services_cpu_seconds()}  # fmt: skip


def ingest_curve(
    run: Run, customers: int, counts: tuple[int, ...] = COUNTS
) -> list[dict[str, Any]]:
    registrations_file = run.dir / "registrations.jsonl"
    registrations_file.write_bytes(b"\n".join(m.value for m in registrations(customers)))
    total = run.end_offsets(list(run.topics.values()))
    curve = []
    for n in counts:
        url = run.database(f"scale{n}")
        subprocess.run([LEDGER, "ingest", str(registrations_file)], env=run.env(url),
                       check=True, capture_output=True)  # fmt: skip
        group = f"{run.prefix}-ingest-{n}"
        admin = run.admin()
        env = {"LEDGER_CONSUMER_GROUP_INGEST": group}
        children = [run.start(f"consume{n}-{k}", [LEDGER, "consume"], url, env)
                    for k in range(1, n + 1)]  # fmt: skip
        marks: list[tuple[float, int]] = []

        at_mark: dict[str, Any] = {}

        def done(admin: Any = admin, group: str = group, marks: list[Any] = marks,
                 at_mark: dict[str, Any] = at_mark,
                 children: list[Child] = children) -> bool:  # fmt: skip
            committed = run.committed(admin, group)
            if not marks and committed > 0:
                marks.append((time.perf_counter(), committed))
                at_mark.update(cpu_now(children))
            return committed >= total

        finished = wait_until("ingest", done, 900, 0.05, sampler(children))
        for child in children:
            child.sample()
        # CPU from the first commit on, like the rate: start-up (imports, connections) left out.
        usage = cores(children, at_mark["processes"], finished - marks[0][0], at_mark["services"])
        for child in children:
            run.stop(child)
        admin.close()
        t_first, first = marks[0]
        rate = (total - first) / (finished - t_first)
        curve.append({"processes": n, "msgs_per_s": rate, "cores": usage,
                      "cores_total": round(sum(usage.values()), 2)})  # fmt: skip
        log(f"scaling: ingest x{n}: {rate:,.0f} msg/s; cores {usage}")
    return curve


def drop_projection_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in PROJECTION_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def projection_curve(run: Run, url: str, counts: tuple[int, ...] = COUNTS) -> list[dict[str, Any]]:
    head, events = sql(url, "SELECT max(notification_id), count(*) FROM ledger_events")[0]
    publish = run.start("publish", [LEDGER, "publish"], url)

    def published() -> bool:
        try:  # ledger_positions appears when `ledger publish` starts
            return publish_position(url, run.topic_events) >= int(head)
        except Exception:
            return False

    wait_until("publish", published, 900, 0.2, publish.sample)
    run.stop(publish)
    curve = []
    for n in counts:
        drop_projection_tables(url)  # each count starts from empty views
        group = f"{run.prefix}-project-{n}"
        env = {"LEDGER_CONSUMER_GROUP_PROJECT": group}
        children = [run.start(f"project{n}-{k}", [LEDGER, "project"], url, env)
                    for k in range(1, n + 1)]  # fmt: skip
        marks: list[tuple[float, int]] = []

        at_mark: dict[str, Any] = {}

        def done(group: str = group, marks: list[Any] = marks, at_mark: dict[str, Any] = at_mark,
                 children: list[Child] = children) -> bool:  # fmt: skip
            applied: int = projected(url, group)
            if not marks and applied > 0:
                marks.append((time.perf_counter(), applied))
                at_mark.update(cpu_now(children))
            return applied >= int(events)

        finished = wait_until("projection", done, 900, 0.05, sampler(children))
        for child in children:
            child.sample()
        usage = cores(children, at_mark["processes"], finished - marks[0][0], at_mark["services"])
        for child in children:
            run.stop(child)
        t_first, first = marks[0]
        rate = (events - first) / (finished - t_first)
        curve.append({"processes": n, "events_per_s": rate, "cores": usage,
                      "cores_total": round(sum(usage.values()), 2)})  # fmt: skip
        log(f"scaling: project x{n}: {rate:,.0f} events/s; cores {usage}")
    return curve


def cpu_per_thousand(row: dict[str, Any], rate: float) -> float:
    """CPU milliseconds the ledger's own processes spent per 1,000 messages or events (=
    microseconds per one): on a shared machine the rate follows the CPU share a process
    gets, this does not."""
    ours = float(sum(v for k, v in row["cores"].items() if k not in ("postgresql", "kafka")))
    return ours / rate * 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--project-only",
        action="store_true",
        help="ingest once (two processes), then only the projection curve",
    )
    parser.add_argument(
        "--ingest",
        type=_counts,
        default=COUNTS,
        metavar="N,N,...",
        help="numbers of `ledger consume` to run in turn (default 1,2,4)",
    )
    parser.add_argument(
        "--project",
        type=_counts,
        default=COUNTS,
        metavar="N,N,...",
        help="numbers of `ledger project` to run in turn (default 1,2,4)",
    )
    parser.add_argument(
        "--no-writer-lock", action="store_true", help="skip the writer lock measurement"
    )
    args = parser.parse_args()
    run = Run(QUICK, False, args.output)
    info: dict[str, Any] = {"machine": machine(), "customers": args.customers,
                            "messages": args.messages}  # fmt: skip
    try:
        run.create_topics()
        run.worker("produce-registrations", "produce", "--bootstrap", run.bootstrap, "--prefix",
                   run.prefix, "--customers", str(args.customers), "--registrations")  # fmt: skip
        run.worker("produce-activity", "produce", "--bootstrap", run.bootstrap, "--prefix",
                   run.prefix, "--customers", str(args.customers), "--messages",
                   str(args.messages))  # fmt: skip
        total = run.end_offsets(list(run.topics.values()))
        info["kafka_raw"] = run.worker("kafka-raw", "kafka-raw", "--bootstrap", run.bootstrap,
                                       "--prefix", run.prefix, "--group", f"{run.prefix}-raw",
                                       "--expect", str(total))  # fmt: skip
        log(f"scaling: kafka-python alone {info['kafka_raw']['rate']:,.0f} rec/s")
        info["ingest"] = ingest_curve(run, args.customers,
                                      (2,) if args.project_only else args.ingest)  # fmt: skip
        info["project"] = projection_curve(run, run.databases[0], args.project)
        if not args.no_writer_lock:
            info["writer_lock"] = writer_lock(run, args.customers)
    finally:
        run.cleanup()
    finish(args, info)


def writer_lock(run: Run, customers: int) -> Any:
    out = run.dir / "writer-lock.json"
    lock = Child("writer-lock", [PYTHON, str(ROOT / "benchmarks" / "writer_lock.py"),
                                 "--customers", str(customers), "--messages", "20000",
                                 "--out", str(out)], run.env(""), run.dir)  # fmt: skip
    if lock.wait(900) != 0:
        raise RuntimeError(f"writer_lock failed:\n{lock.tail()}")
    return json.loads(out.read_text())


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(",") if n.strip())


def finish(args: argparse.Namespace, info: dict[str, Any]) -> None:
    """Write scaling.json and print the table."""
    info["load_after"] = os.getloadavg()
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "scaling.json").write_text(json.dumps(info, indent=2, default=str))
    raw = info["kafka_raw"]["rate"]
    print(
        f"machine: {info['machine']['cpus']} x {info['machine']['cpu_model']}, load before "
        f"{info['machine']['load_average'][0]:.2f}, after {info['load_after'][0]:.2f}"
    )
    print(f"kafka-python consume alone: {raw:,.0f} rec/s")
    for row in info["ingest"]:
        print(
            f"ingest x{row['processes']}: {row['msgs_per_s']:,.0f} msg/s (x"
            f"{row['msgs_per_s'] / raw:.3f} of raw); cores {row['cores']}; the consumers' CPU"
            f" {cpu_per_thousand(row, row['msgs_per_s']):.0f} µs per message"
        )
    for row in info["project"]:
        print(
            f"project x{row['processes']}: {row['events_per_s']:,.0f} events/s (x"
            f"{row['events_per_s'] / raw:.3f} of raw); cores {row['cores']}; the projectors' CPU"
            f" {cpu_per_thousand(row, row['events_per_s']):.0f} µs per event"
        )
    if "writer_lock" not in info:
        return
    lock = info["writer_lock"]
    print(f"writer lock: {lock['hold_ms']['mean']:.1f} ms per batch of {lock['batch']} "
          f"(p99 {lock['hold_ms']['p99']:.1f}); alone it carries "
          f"{lock['lock_bound_msgs_per_s']:,.0f} msg/s")  # fmt: skip


if __name__ == "__main__":
    main()
