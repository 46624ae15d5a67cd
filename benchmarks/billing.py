"""Benchmark of `ledger bill partner-center` (SPEC §10, issue #16): a generated Partner Center
file of N lines (default 100,000) billed end to end — parse, price, ingest through the normal
path — on SQLite and on PostgreSQL (no Kafka), next to the raw rate of reading the same file
with the `csv` module in the same run. Into PostgreSQL once per `--workers` count (`ledger bill
partner-center --workers N`, the file split by customer over N processes). For each `ledger`
command: wall and CPU seconds (with its workers'), the peak RSS of its largest process, and
the peak of the summed RSS and PSS of the process and its workers (sampled from /proc: the
workers are forked and share the file's text with the parent, which RSS counts in each).

    eval "$(deploy/services env)"                  # PostgreSQL (LEDGER_DATABASE_URL)
    .venv/bin/python benchmarks/billing.py         # 100,000 lines; workers 1 and 2
    .venv/bin/python benchmarks/billing.py --lines 10000 --skip-sqlite --workers 1,2,4

Target (issue #16): >= 10,000 lines/s into PostgreSQL without Kafka, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import create_database, drop_database  # noqa: E402
from ledger.app.billing import CustomerInfo, plan  # noqa: E402
from ledger.app.reconcile import parse_recon_file  # noqa: E402
from ledger.domain.pricebook import load_price_book  # noqa: E402
from tests.fixtures.recon_gen import generate  # noqa: E402

LEDGER = str(Path(sys.executable).with_name("ledger"))
BOOK = '[defaults]\nmarkup_percent = "15"\n[[rules]]\ncharge_types = ["usage"]\n' \
       'markup_percent = "8"\nmin_margin_percent = "10"\n'  # fmt: skip
# Runs a command and prints its peak RSS (KiB, ru_maxrss of that one child) and CPU seconds
# (user + system) on stderr's last line: a fresh wrapper per measurement, so no earlier
# child's figures hide it. CPU seconds hold on a shared machine where wall time does not.
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
           "print(u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr); "
           "sys.exit(code)")  # fmt: skip


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_LEVEL="warning")
    return env


@dataclass
class Measured:
    seconds: float  # wall
    cpu_seconds: float  # of the `ledger` process and its workers (user + system), not PostgreSQL's
    rss_mb: float  # peak of the largest single process (ru_maxrss)
    tree_rss_mb: float  # peak of the sum over the process and its workers (sampled)
    tree_pss_mb: float  # the same in PSS: pages the workers share with the parent counted once
    load: float  # 1-minute load average at the end
    stdout: str

    def figures(self, lines: int, prefix: str = "") -> dict[str, object]:
        return {f"{prefix}seconds": round(self.seconds, 2),
                f"{prefix}lines_per_s": round(lines / self.seconds),
                f"{prefix}cpu_seconds": round(self.cpu_seconds, 2),
                f"{prefix}lines_per_cpu_s": round(lines / self.cpu_seconds),
                f"{prefix}cpu_us_per_line": round(1e6 * self.cpu_seconds / lines),
                f"{prefix}peak_rss_mb": round(self.rss_mb),
                f"{prefix}peak_tree_rss_mb": round(self.tree_rss_mb),
                f"{prefix}peak_tree_pss_mb": round(self.tree_pss_mb),
                f"{prefix}load": self.load}  # fmt: skip


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; (0, 0) when it is gone."""
    sizes = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for row in rollup:
                name, _, rest = row.partition(" ")
                if name in sizes:
                    sizes[name] = int(rest.split()[0])
    except OSError:
        pass
    return sizes["Rss:"], sizes["Pss:"]


class TreeMemory(threading.Thread):
    """Samples the summed RSS and PSS of a process tree every `interval` seconds: the peak
    of a command that forks workers (ru_maxrss is one process's)."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.rss_kib = self.pss_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            sizes = [_memory_kib(pid) for pid in _tree(self.pid)]
            self.rss_kib = max(self.rss_kib, sum(rss for rss, _ in sizes))
            self.pss_kib = max(self.pss_kib, sum(pss for _, pss in sizes))


def measured(args: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Wall and CPU seconds, peak memory and stdout of one `ledger` command."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", WRAPPER, LEDGER, *args], env=env,
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    sampler = TreeMemory(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"ledger {' '.join(args)} failed:\n{stderr[-3000:]}")
    rss_kib, cpu = stderr.strip().splitlines()[-1].split()
    return Measured(seconds, float(cpu), int(rss_kib) / 1024, sampler.rss_kib / 1024,
                    sampler.pss_kib / 1024, round(os.getloadavg()[0], 1), stdout)  # fmt: skip


def raw_csv_rate(raw: bytes) -> dict[str, float]:
    """Lines/s (wall and of CPU) of reading the file with csv.DictReader alone (decode
    included), with the load average: measured next to each billing run, as the load of a
    shared machine changes."""
    start, cpu = time.perf_counter(), time.process_time()
    rows = sum(1 for _ in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return {"raw_csv_lines_per_s": round(rows / (time.perf_counter() - start)),
            "raw_csv_lines_per_cpu_s": round(rows / (time.process_time() - cpu)),
            "load": round(os.getloadavg()[0], 1)}  # fmt: skip


def charges_jsonl(raw: bytes, currency: str) -> str:
    """The charge messages billing makes of the file, as a JSONL file for `ledger ingest`."""
    recon = parse_recon_file(raw)
    _, planned, _ = plan(recon, load_price_book(BOOK), lambda _: CustomerInfo(currency))
    return "".join(json.dumps(p.message, separators=(",", ":")) + "\n" for p in planned)


def ingest_only(url: str, work: Path, lines: int) -> dict[str, object]:
    """The same charges through `ledger ingest` alone: the ingest path's own rate."""
    env = env_for(url)
    subprocess.run([LEDGER, "ingest", "customers.jsonl"], env=env, cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    raw = raw_csv_rate((work / "invoice.csv").read_bytes())
    run = measured(["ingest", "charges.jsonl", "--batch-size", "1000"], env, work)
    return {**run.figures(lines), "raw": raw}


def bill(url: str, work: Path, lines: int, workers: int = 1) -> dict[str, object]:
    env = env_for(url)
    subprocess.run([LEDGER, "ingest", "customers.jsonl"], env=env, cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    args = ["bill", "partner-center", "invoice.csv", "--price-book", "prices.toml", "--json",
            "--workers", str(workers)]  # fmt: skip
    raw = raw_csv_rate((work / "invoice.csv").read_bytes())
    first = measured(args, env, work)
    report = json.loads(first.stdout)
    again = measured(args, env, work)
    second = json.loads(again.stdout)
    assert second["billed"] == 0 and second["duplicates"] == report["billed"], second
    return {"lines": lines, "workers": workers, "billed": report["billed"],
            **first.figures(lines),
            **again.figures(lines, "rerun_"), "raw": raw}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to bill PostgreSQL with (comma-separated)"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-billing-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        scenario = generate(options.lines, options.customers, seed=16, deliberate=False)
        generated = time.perf_counter() - started
        registrations = [m for m in scenario.messages if '"customer_registered"' in m]
        (work / "customers.jsonl").write_text("\n".join(registrations) + "\n")
        (work / "invoice.csv").write_bytes(scenario.csv_bytes)
        (work / "prices.toml").write_text(BOOK)
        results: dict[str, object] = {
            "file_lines": scenario.line_count,
            "file_mb": round(len(scenario.csv_bytes) / 1e6, 1),
            "generate_seconds": round(generated, 1),
            **raw_csv_rate(scenario.csv_bytes),
        }
        (work / "charges.jsonl").write_text(charges_jsonl(scenario.csv_bytes, "USD"))
        count = scenario.line_count
        print(json.dumps(results), file=sys.stderr, flush=True)  # partial results as they come
        if not options.skip_sqlite:
            results["sqlite"] = bill(f"sqlite:///{work / 'ledger.db'}", work, count)
            print(json.dumps(results["sqlite"]), file=sys.stderr, flush=True)
            results["sqlite_ingest_only"] = ingest_only(f"sqlite:///{work / 'ingest.db'}", work,
                                                        count)  # fmt: skip
            print(json.dumps(results["sqlite_ingest_only"]), file=sys.stderr, flush=True)
        if not options.skip_postgres:
            runs: list[tuple[str, Callable[[str, Path, int], dict[str, object]]]] = [
                (f"postgresql_workers_{n}", functools.partial(bill, workers=n))
                for n in map(int, options.workers.split(","))
            ]
            for label, run in [*runs, ("postgresql_ingest_only", ingest_only)]:
                url = create_database("billing")
                try:
                    results[label] = run(url, work, count)
                    print(json.dumps({label: results[label]}), file=sys.stderr, flush=True)
                finally:
                    drop_database(url)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
