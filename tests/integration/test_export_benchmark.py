"""`benchmarks/export.py --quick` runs end to end, so the export benchmark cannot rot: it
builds its store, exports the whole year and reports every figure (not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_export_benchmark_reports_every_figure() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "export.py"), "--quick"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    # 100 customers, 3 months: a registration, then per month 3 charges, an invoice, a
    # payment and its application; 18 journal lines per customer and month.
    assert (result["events"], result["journal_rows"]) == (100 * (1 + 3 * 6), 100 * 3 * 18)
    for name in ("raw_notifications_per_s", "raw_read_events_per_s", "export_rows_per_s"):
        assert result[name] > 0
    assert set(result["peak_rss_mb"]) == {"idle", "notifications", "read", "export",
                                          "materialised"}  # fmt: skip
    assert all(mb > 0 for mb in result["peak_rss_mb"].values())
