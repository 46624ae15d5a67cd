"""`ledger audit checkpoint` and `ledger audit verify` on a big PostgreSQL store (SPEC §13,
issue 19; targets: verify >= 100,000 events/s, checkpoint < 10 s on 1,000,000 events), each
next to what the same store costs otherwise, measured in the same run:

- psycopg's binary COPY of the same rows (stream id, version, topic, state), in the order the
  audit reads them, doing nothing with them: the read floor of one process;
- `ledger projections rebuild` over the same store (the project's other full read).

    eval "$(deploy/services up)"
    .venv/bin/python benchmarks/audit.py                      # generate 1,000,000 events
    .venv/bin/python benchmarks/audit.py --events 200000 --customers 2000
    .venv/bin/python benchmarks/audit.py --url postgresql://…/db   # reuse a store (kept)

The store is made by `benchmarks/workers.py generate` (as `benchmarks/run.py` makes its
rebuild store) in a scratch database, dropped at the end. Wall times include the process
start; CPU seconds are the command's own processes (its scan processes included), not
PostgreSQL's. Prints a table and writes benchmarks/results/audit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import create_database, drop_database, machine  # noqa: E402

PYTHON = sys.executable
LEDGER = str(Path(sys.executable).with_name("ledger"))
WORKERS = str(ROOT / "benchmarks" / "workers.py")
RESULTS = ROOT / "benchmarks" / "results"
KEY = "42" * 32  # a benchmark's audit key (hex, 32 bytes)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command to its end: wall seconds, CPU seconds of it and its children."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    wall, used = time.perf_counter() - started, children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")  # fmt: skip
    return {"seconds": wall, "cpu_seconds": used, "stdout": done.stdout.strip()}


def copy_rate(url: str) -> dict[str, Any]:
    """The same rows the audit reads, by the audit's own binary COPY in stream order (one
    process, every stream), discarded."""
    from ledger.store.chainscan import ScanTarget, rows

    target = ScanTarget("postgresql", url, '"public"."ledger_events"')
    count = 0
    started, cpu = time.perf_counter(), time.process_time()
    for _row in rows(target, None, None, upto=2**62):
        count += 1
    return {"rows": count, "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu}  # fmt: skip


def count_events(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    return int(row[0]) if row else 0


def generate(url: str, customers: int, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "generate.json"
        subprocess.run([PYTHON, WORKERS, "generate", "--out", str(out), "--url", url,
                        "--customers", str(customers), "--events", str(events)],
                       check=True, timeout=7200)  # fmt: skip
        result: dict[str, Any] = json.loads(out.read_text())
    return result


def measure(url: str, events: int, work: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_AUDIT_KEY=KEY, LEDGER_LOG_FORMAT="json")
    out = work / "checkpoints.jsonl"
    results: dict[str, Any] = {"events": events, "load_before": os.getloadavg()}
    log("psycopg binary COPY of the rows (the read floor)")
    results["copy"] = copy_rate(url)
    log("ledger projections rebuild")
    results["rebuild"] = timed([LEDGER, "projections", "rebuild"], env)
    log("ledger audit checkpoint")
    results["checkpoint"] = timed([LEDGER, "audit", "checkpoint", "--out", str(out)], env)
    log("ledger audit verify --checkpoints")
    results["verify"] = timed([LEDGER, "audit", "verify", "--checkpoints", str(out)], env)
    if f"OK: {events} events verified" not in results["verify"]["stdout"]:
        raise RuntimeError(f"verify did not check every event: {results['verify']['stdout']}")
    for name in ("copy", "rebuild", "checkpoint", "verify"):
        results[name]["events_per_s"] = events / results[name]["seconds"]
        results[name].pop("stdout", None)
    results["load_after"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> list[list[str]]:
    copy, rebuild = r["copy"]["events_per_s"], r["rebuild"]["events_per_s"]
    rows = [["what", "seconds", "events/s", "CPU s", "x rebuild", "x COPY"]]
    for name, label in (("copy", "psycopg binary COPY (read floor)"),
                        ("rebuild", "ledger projections rebuild"),
                        ("checkpoint", "ledger audit checkpoint"),
                        ("verify", "ledger audit verify --checkpoints")):  # fmt: skip
        m = r[name]
        rows.append([label, f"{m['seconds']:.1f}", f"{m['events_per_s']:,.0f}",
                     f"{m['cpu_seconds']:.1f}", f"{m['events_per_s'] / rebuild:.2f}",
                     f"{m['events_per_s'] / copy:.2f}"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="reuse this PostgreSQL store (it is kept)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    info: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                            "machine": machine()}  # fmt: skip
    url = args.url or create_database("audit")
    try:
        if not args.url:
            log(f"generating {args.events:,} events ({args.customers:,} customers)")
            info["generate"] = generate(url, args.customers, args.events)
        events = count_events(url)
        with tempfile.TemporaryDirectory() as work:
            info["results"] = measure(url, events, Path(work))
    finally:
        if not args.url:
            drop_database(url)
    rows = table(info["results"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    r = info["results"]
    print(
        f"\n{events:,} events; {info['machine']['cpus']} CPUs ({info['machine']['cpu_model']});"
        f" load average before {r['load_before'][0]:.1f}, after {r['load_after'][0]:.1f}"
    )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "audit.json").write_text(json.dumps(info, indent=2, default=str))


if __name__ == "__main__":
    main()
