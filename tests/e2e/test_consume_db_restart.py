"""Issue 4: PostgreSQL restarted while `ledger consume` works.

The cluster is stopped (`pg_ctlcluster … stop -m fast`, every connection cut) while messages
flow, and started again a few seconds later: the consumer logs consume.database_unavailable,
waits, resumes, dead-letters nothing, and the end state is exactly-once and equal to an
`ledger ingest` of the same messages. PostgreSQL is always started again (finally).

This stops the shared test cluster for a few seconds: other tests running at that moment on
the same server see their connections cut.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.e2e.procs import CONSUME, Run, mixed_workload, reference_of, wait_until

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 4.0


def _cluster(database_url: str) -> tuple[str, str]:
    """(version, name) of the local Debian cluster listening on the database URL's port."""
    port = str(urlsplit(database_url).port or 5432)
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        version, name, cluster_port, *_ = line.split()
        if cluster_port == port:
            return version, name
    pytest.fail(f"no PostgreSQL cluster on port {port} in pg_lsclusters:\n{out.stdout}")


def _pg_ctl(cluster: tuple[str, str], *args: str) -> None:
    done = subprocess.run(
        ["pg_ctlcluster", *cluster, *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0 and "already running" not in done.stdout + done.stderr:
        pytest.fail(f"pg_ctlcluster {' '.join(args)}: {done.stdout} {done.stderr}")


def _answers(database_url: str) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture
def run(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    fresh_pg_url: Callable[[], str],
) -> Iterator[Run]:
    pipeline = Run(tmp_path, kafka_bootstrap, kafka_topics, fresh_pg_url)
    try:
        yield pipeline
    finally:
        pipeline.close()


@pytest.fixture
def postgres_control(pg_server_url: str) -> Iterator[Callable[[str], None]]:
    """`control("stop"|"start")` on the test cluster; it is running again afterwards."""
    cluster = _cluster(pg_server_url)

    def control(action: str) -> None:
        if action == "stop":
            _pg_ctl(cluster, "stop", "-m", "fast")
        elif not _answers(pg_server_url):  # (someone may have started it already)
            _pg_ctl(cluster, "start")

    try:
        yield control
    finally:
        if not _answers(pg_server_url):
            subprocess.run(["pg_ctlcluster", *cluster, "start"], timeout=60, check=False)
        deadline = time.monotonic() + 60
        while not _answers(pg_server_url) and time.monotonic() < deadline:
            time.sleep(0.5)


def test_database_restart_is_waited_out_without_loss(
    run: Run,
    tmp_path: Path,
    postgres_control: Callable[[str], None],
) -> None:
    rng = random.Random(7)
    workload = mixed_workload(seed=77, customers=100, total=6_000, prefix="r")
    reference = reference_of(workload, tmp_path)
    consumer = run.procs.start(*CONSUME)
    run.register(workload, alive=[consumer])
    run.send_in_background(workload, chunk=200, pause=0.35)
    registered = len(consumer.logged("consume.batch"))
    wait_until(
        lambda: len(consumer.logged("consume.batch")) >= registered + 2,
        timeout=60, what="2 batches", procs=run.procs, alive=[consumer],
    )  # fmt: skip
    time.sleep(rng.uniform(0.0, 0.5))

    assert run.sender is not None
    postgres_control("stop")
    try:
        time.sleep(OUTAGE_SECONDS)
        assert consumer.running, consumer.tail()
        assert run.sender.is_alive(), "messages stopped flowing before the restart"
    finally:
        postgres_control("start")
    batches_before = len(consumer.logged("consume.batch"))

    run.wait_sent()
    run.wait_drained(alive=[consumer])
    assert len(consumer.logged("consume.batch")) > batches_before, "no batch after the restart"
    run.stop([consumer])
    assert len(run.sent) == 6_000
    run.assert_exactly_once_and_views(workload, reference)
