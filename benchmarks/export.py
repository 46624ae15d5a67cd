"""`ledger export journal` on a large store (SPEC §12): rows/s and peak RSS, next to the raw
limit measured in the same run — reading the same events from the store without postings.

    python benchmarks/export.py [--customers 2000] [--months 12] [--database-url URL] [--quick]

The store holds `months` months of `customers` customers (three charges, an invoice and a
payment applied to it per customer and month) in an embedded SQLite file in a temporary
directory, or in an existing empty PostgreSQL database given by --database-url. Each
measurement runs in a fresh process, so its peak RSS (VmHWM) is its own:

- `idle`: the process with the application built and nothing read (the floor);
- `notifications`: the store's records in global order, not decoded;
- `read`: the same events decoded to the SPEC §5 shape (the raw limit of an export);
- `export`: `ledger export journal` over the whole year to a CSV file (the command itself);
- `materialised`: the same rows kept in a list (what a non-streaming export would hold).

Peak RSS of `export` stays near `idle` whatever the store's size; `materialised` grows with it.
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
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST, LAST = "2025-01-01", "2025-12-31"
MODES = ("idle", "notifications", "read", "export", "materialised")


def build_store(url: str, customers: int, months: int) -> int:
    """The store: per customer and month three charges, the invoice run, a payment in full."""
    from ledger.bootstrap import build_app
    from ledger.config import Settings
    from tests.helpers import charge, customer_registered, payment

    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    ids = [f"bench-{i:05d}" for i in range(customers)]
    _ingest(app, [customer_registered(c, occurred_at="2025-01-01T08:00:00Z") for c in ids])
    for month in range(1, months + 1):
        period = f"2025-{month:02d}"
        at = f"{period}-05T10:00:00Z"
        raws = []
        for c in ids:
            raws += [
                charge(c, f"{period}-A", "120.00", quantity="4", unit_price="30.00",
                       billing_period=period, occurred_at=at),
                charge(c, f"{period}-B", "35.50", billing_period=period, occurred_at=at,
                       description="Azure plan (usage)"),
                charge(c, f"{period}-C", "17.42", billing_period=period, occurred_at=at,
                       description="Microsoft 365 E3 (prorated)"),
            ]  # fmt: skip
        _ingest(app, raws)
        invoice_day = date(2025 + month // 12, month % 12 + 1, 1)
        app.run_invoices(period, invoice_day)
        paid_at = f"{invoice_day.isoformat()}T12:00:00Z"
        _ingest(app, [payment(c, f"PAY-{period}", "172.92", occurred_at=paid_at,
                              invoice_id=f"INV-{c}-{period}") for c in ids])  # fmt: skip
    return int(app.head_position())


def _ingest(app: Any, raws: list[str]) -> None:
    from tests.helpers import msgs

    for start in range(0, len(raws), 1000):
        app.handle_batch(msgs(raws[start : start + 1000]))


def child(mode: str, url: str, out: str) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from ledger.app.exports.journal import ExportTotals, journal_export
    from ledger.app.views import published_events
    from ledger.bootstrap import build_app
    from ledger.config import Settings
    from ledger.logs import configure_logging

    configure_logging("console", "warning")
    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    began = time.perf_counter()
    events = rows = 0
    if mode == "notifications":
        events = sum(1 for _ in app.notifications())
    elif mode == "read":
        events = sum(1 for _ in published_events(app))
    elif mode == "export":
        from ledger.cli import main as cli

        os.environ["LEDGER_DATABASE_URL"] = url
        sys.argv = ["ledger", "export", "journal", "--from", FIRST, "--to", LAST, "-o", out]
        try:
            cli.main()
        except SystemExit as done:
            assert not done.code, f"export failed: {done.code}"
        with open(out, encoding="utf-8") as written:
            rows = sum(1 for _ in written) - 1
        events = int(app.head_position())
    elif mode == "materialised":
        totals = ExportTotals()
        kept = list(journal_export(published_events(app), date.fromisoformat(FIRST),
                                   date.fromisoformat(LAST), totals))  # fmt: skip
        events, rows = totals.events, len(kept)
    seconds = time.perf_counter() - began
    peak_mb = peak_rss_kb() / 1024
    return {"mode": mode, "seconds": round(seconds, 3), "events": events, "rows": rows,
            "peak_rss_mb": round(peak_mb, 1)}  # fmt: skip


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries that over
    exec from the parent, whose size would then be every child's floor."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(mode: str, url: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--database-url", url, "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--database-url", help="an existing, empty store (default: SQLite)")
    parser.add_argument("--quick", action="store_true", help="100 customers, 3 months")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.database_url, args.out)))
        return
    from ledger.logs import configure_logging

    configure_logging("console", "warning")
    customers, months = (100, 3) if args.quick else (args.customers, args.months)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        began = time.perf_counter()
        stored = build_store(url, customers, months)
        built = time.perf_counter() - began
        load_before = os.getloadavg()[0]
        runs = {mode: measure(mode, url, Path(tmp) / "journal.csv") for mode in MODES}
        size = (Path(tmp) / "journal.csv").stat().st_size
    read, export = runs["read"], runs["export"]
    result = {
        "store": url.split(":", 1)[0],
        "customers": customers, "months": months, "events": stored,
        "store_build_s": round(built, 1),
        "journal_rows": export["rows"], "csv_mb": round(size / 2**20, 1),
        "raw_notifications_per_s": round(stored / runs["notifications"]["seconds"]),
        "raw_read_events_per_s": round(stored / read["seconds"]),
        "export_events_per_s": round(stored / export["seconds"]),
        "export_rows_per_s": round(export["rows"] / export["seconds"]),
        "export_vs_raw_read": round(read["seconds"] / export["seconds"], 2),
        "peak_rss_mb": {mode: runs[mode]["peak_rss_mb"] for mode in MODES},
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
