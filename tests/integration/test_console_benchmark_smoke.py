"""`benchmarks/console.py` runs end to end on the real PostgreSQL (a tiny store), so the
console's benchmark cannot rot: every page is timed next to its API endpoint (the figures
themselves are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_benchmark_times_every_page(pg_server_url: str, kafka_bootstrap: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=pg_server_url, LEDGER_KAFKA_BOOTSTRAP=kafka_bootstrap)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "console.py"), "--customers", "40",
         "--requests", "2"],
        env=env, capture_output=True, text=True, timeout=240, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    pages = {row["page"]: row for row in report["pages"]}
    assert set(pages) >= {"overview", "collections", "customer", "microsoft", "support", "audit"}
    for row in pages.values():
        assert row["p99_ms"] > 0 and row["api_p99_ms"] > 0
