"""`benchmarks/run.py --quick` runs end to end on the real services, so the benchmarks cannot
rot: every phase produces its figures (the figures themselves are not judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


# Every phase, the API's rate steps and overload included, on a machine that may be busy.
@pytest.mark.timeout(660)
def test_the_quick_benchmark_run_produces_every_figure(
    pg_server_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=pg_server_url, LEDGER_KAFKA_BOOTSTRAP=kafka_bootstrap)
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output",
         str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    results = report["results"]
    assert results["ingest"]["msgs_per_s"] > 0 and results["ingest"]["consumers"] == 2
    assert results["ingest_one"]["msgs_per_s"] > 0
    assert results["ingest"]["dead_letters"] == 0
    assert results["raw"]["kafka"]["rate"] > 0
    assert results["raw"]["postgres"]["copy"]["messages_per_s"] > 0
    assert results["naive"]["rate"] > 0
    assert results["publish_project"]["events_per_s"] > 0
    assert results["rebuild"]["events"] >= 30_000
    assert results["api"]["requests"] > 0 and results["api"]["p99_ms"] > 0
    assert (
        results["api"]["new_connections"]["connections"]
        >= results["api"]["new_connections"]["requests"]
    )
    assert results["api"]["steps"] and results["api"]["overload"]["requests"] > 0
    for tag in ("lag_cold", "lag"):
        assert results[tag]["not_seen"] == 0 and results[tag]["p99_ms"] > 0
    for process in ("consume-1", "consume-2", "consume-one", "consume-live-1", "publish",
                    "project-1", "project-2", "serve", "rebuild"):  # fmt: skip
        assert report["peak_rss_mb"][process] > 0
    table = (tmp_path / "latest.md").read_text()
    assert "| ingest (`ledger consume` x2, one group) |" in table
    assert "| ingest, one `ledger consume` |" in table
    assert "ingest (`ledger consume` x2, one group)" in done.stdout
