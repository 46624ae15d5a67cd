"""Benchmark of `ledger bill partner-center` (SPEC §10, issue #16): a generated Partner Center
file of N lines (default 100,000) billed end to end — parse, price, ingest through the normal
path — on SQLite and on PostgreSQL (no Kafka), next to the raw rate of reading the same file
with the `csv` module in the same run; the peak RSS of each `ledger` process.

    eval "$(deploy/services env)"                  # PostgreSQL (LEDGER_DATABASE_URL)
    .venv/bin/python benchmarks/billing.py         # 100,000 lines
    .venv/bin/python benchmarks/billing.py --lines 10000

Target (issue #16): >= 10,000 lines/s into PostgreSQL without Kafka, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.support import create_database, drop_database  # noqa: E402
from ledger.app.billing import CustomerInfo, plan  # noqa: E402
from ledger.domain.pricebook import load_price_book  # noqa: E402
from ledger.reconcile import parse_recon_file  # noqa: E402
from tests.fixtures.recon_gen import generate  # noqa: E402

LEDGER = str(Path(sys.executable).with_name("ledger"))
BOOK = '[defaults]\nmarkup_percent = "15"\n[[rules]]\ncharge_types = ["usage"]\n' \
       'markup_percent = "8"\nmin_margin_percent = "10"\n'  # fmt: skip
# Runs a command and prints its peak RSS (KiB, ru_maxrss of that one child) on stderr's last
# line: a fresh wrapper per measurement, so no earlier child's peak hides it.
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(code)")  # fmt: skip


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_LEVEL="warning")
    return env


def measured(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of one `ledger` command."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, LEDGER, *args], env=env, cwd=cwd,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"ledger {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    rss_kib = int(done.stderr.strip().splitlines()[-1])
    return seconds, rss_kib / 1024, done.stdout


def raw_csv_rate(raw: bytes) -> float:
    """Lines/s of reading the file with csv.DictReader alone (decode included)."""
    start = time.perf_counter()
    rows = sum(1 for _ in csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return rows / (time.perf_counter() - start)


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
    seconds, rss, _ = measured(["ingest", "charges.jsonl", "--batch-size", "1000"], env, work)
    return {"seconds": round(seconds, 2), "lines_per_s": round(lines / seconds),
            "peak_rss_mb": round(rss)}  # fmt: skip


def bill(url: str, work: Path, lines: int) -> dict[str, object]:
    env = env_for(url)
    subprocess.run([LEDGER, "ingest", "customers.jsonl"], env=env, cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    args = ["bill", "partner-center", "invoice.csv", "--price-book", "prices.toml", "--json"]
    seconds, rss, out = measured(args, env, work)
    report = json.loads(out)
    again_seconds, again_rss, again_out = measured(args, env, work)
    again = json.loads(again_out)
    assert again["billed"] == 0 and again["duplicates"] == report["billed"], again
    return {
        "lines": lines, "billed": report["billed"], "seconds": round(seconds, 2),
        "lines_per_s": round(lines / seconds), "peak_rss_mb": round(rss),
        "rerun_seconds": round(again_seconds, 2),
        "rerun_lines_per_s": round(lines / again_seconds), "rerun_peak_rss_mb": round(again_rss),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--skip-postgres", action="store_true")
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
            "raw_csv_lines_per_s": round(raw_csv_rate(scenario.csv_bytes)),
        }
        (work / "charges.jsonl").write_text(charges_jsonl(scenario.csv_bytes, "USD"))
        count = scenario.line_count
        print(json.dumps(results), file=sys.stderr, flush=True)  # partial results as they come
        results["sqlite"] = bill(f"sqlite:///{work / 'ledger.db'}", work, count)
        print(json.dumps(results["sqlite"]), file=sys.stderr, flush=True)
        results["sqlite_ingest_only"] = ingest_only(f"sqlite:///{work / 'ingest.db'}", work,
                                                    count)  # fmt: skip
        print(json.dumps(results["sqlite_ingest_only"]), file=sys.stderr, flush=True)
        if not options.skip_postgres:
            for label, run in (("postgresql", bill), ("postgresql_ingest_only", ingest_only)):
                url = create_database("billing")
                try:
                    results[label] = run(url, work, count)
                    print(json.dumps({label: results[label]}), file=sys.stderr, flush=True)
                finally:
                    drop_database(url)
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
