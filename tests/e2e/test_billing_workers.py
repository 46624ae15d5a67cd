"""`ledger bill partner-center --workers N` on the real PostgreSQL (SPEC §10, issue #16): the
file split by customer over N processes bills exactly what one process bills (same report,
same charge ids, same margin view), a run killed in the middle and run again bills every line
once, and SQLite refuses more than one worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.app.application import LedgerApplication
from ledger.app.billing import charge_ids
from ledger.app.reconcile import parse_recon_file
from ledger.process import usable_cores
from ledger.store.eventstore import eventsourcing_env
from tests.e2e.procs import LEDGER_BIN, ledger_env, run_ledger
from tests.fixtures.recon_gen import Scenario, generate

pytestmark = pytest.mark.e2e

BOOK = '[defaults]\nmarkup_percent = "15"\n[[rules]]\ncharge_types = ["usage"]\n' \
       'markup_percent = "8"\nmin_margin_percent = "10"\n'  # fmt: skip
BILL = ("bill", "partner-center", "invoice.csv", "--price-book", "prices.toml", "--json")


def write_files(work: Path, scenario: Scenario) -> None:
    registrations = [m for m in scenario.messages if '"customer_registered"' in m]
    (work / "customers.jsonl").write_text("\n".join(registrations) + "\n")
    (work / "invoice.csv").write_bytes(scenario.csv_bytes)
    (work / "prices.toml").write_text(BOOK)


def bill(env: dict[str, str], work: Path, *extra: str) -> dict[str, Any]:
    done = run_ledger(*BILL, *extra, env=env, cwd=work, timeout=600)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def posted_charge_ids(url: str) -> Counter[str]:
    """How many times each charge id was posted, from the event store."""
    app = LedgerApplication(eventsourcing_env(url))
    try:
        return Counter(event.data["charge_id"] for event in app.charge_events())
    finally:
        app.close()


def test_workers_bill_what_one_process_bills(
    tmp_path: Path, fresh_pg_url: Callable[[], str]
) -> None:
    # Deliberate lines included (an unknown customer, an unknown ChargeType...), and a line
    # written twice: identical lines are two charges, counted in file order by whichever
    # worker has their customer.
    scenario = generate(2500, 12, seed=61)
    text = scenario.csv_bytes.decode("utf-8-sig")
    last_line = text.rstrip("\r\n").rsplit("\r\n", 1)[1]
    scenario.csv_bytes = (text + last_line + "\r\n").encode()
    write_files(tmp_path, scenario)
    one, three = ledger_env(fresh_pg_url()), ledger_env(fresh_pg_url())
    for env in (one, three):
        run_ledger("ingest", "customers.jsonl", env=env, cwd=tmp_path)

    alone = bill(one, tmp_path)
    split = bill(three, tmp_path, "--workers", "3")
    assert split == alone
    assert alone["billed"] > 2000 and alone["not_billed"]  # the deliberate lines

    wanted = Counter(charge_ids(parse_recon_file(scenario.csv_bytes)))
    posted = posted_charge_ids(three["LEDGER_DATABASE_URL"])
    assert posted == posted_charge_ids(one["LEDGER_DATABASE_URL"])
    assert set(posted) <= set(wanted) and set(posted.values()) == {1}
    assert len(posted) == alone["billed"]

    def margin(env: dict[str, str]) -> Any:
        return json.loads(run_ledger("show", "margin", "--json", env=env, cwd=tmp_path).stdout)

    assert margin(three) == margin(one) != []
    again = bill(three, tmp_path, "--workers", "3")
    assert (again["billed"], again["duplicates"]) == (0, alone["billed"])


def applied_charges(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ledger_messages"
            " WHERE message_key LIKE 'pc-%%' AND outcome = 'applied'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for_a_batch(process: subprocess.Popen[bytes], applied: Callable[[], int]) -> None:
    """Until billing has applied its first batch (`applied()` > 0); fails if `process` ends
    first or nothing is billed within 300 s."""
    deadline = time.monotonic() + 300
    while applied() == 0:
        assert process.poll() is None, f"billing ended ({process.returncode}) before a batch"
        assert time.monotonic() < deadline, "no batch was billed within 300 s"
        time.sleep(0.01)


def gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("killed", ["all", "parent"])
def test_a_run_killed_in_the_middle_and_run_again_bills_each_line_once(
    tmp_path: Path, fresh_pg_url: Callable[[], str], killed: str
) -> None:
    """`all`: the parent and its workers killed together, as by a power cut, between or in
    the middle of their batches. `parent`: only the parent (the OOM killer, kill -9): its
    workers stop before their next batch instead of billing on unseen."""
    scenario = generate(12_000, 40, seed=67, deliberate=False)
    write_files(tmp_path, scenario)
    url = fresh_pg_url()
    env = ledger_env(url)
    run_ledger("ingest", "customers.jsonl", env=env, cwd=tmp_path)
    lines = scenario.line_count

    process = subprocess.Popen([LEDGER_BIN, *BILL, "--workers", "2"], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    try:
        wait_for_a_batch(process, lambda: applied_charges(url))
        deadline = time.monotonic() + 300
        if killed == "all":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(timeout=60)
        while not gone(process.pid):  # the workers, in the parent's process group
            assert time.monotonic() < deadline, "the workers outlived their parent"
            time.sleep(0.05)
    finally:
        if not gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    stopped_at = applied_charges(url)
    assert 0 < stopped_at < lines, "the kill came after the whole file"

    again = bill(env, tmp_path, "--workers", "2")
    assert again["not_billed"] == []
    assert (again["billed"], again["duplicates"]) == (lines - stopped_at, stopped_at)
    posted = posted_charge_ids(url)
    assert posted == Counter(charge_ids(parse_recon_file(scenario.csv_bytes)))
    assert set(posted.values()) == {1}


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    scenario = generate(50, 4, seed=3, deliberate=False)
    write_files(tmp_path, scenario)
    env = ledger_env(f"sqlite:///{tmp_path / 'ledger.db'}")
    run_ledger("ingest", "customers.jsonl", env=env, cwd=tmp_path)
    done = subprocess.run([LEDGER_BIN, *BILL, "--workers", "2"], env=env, cwd=tmp_path,
                          capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert b"--workers" in done.stderr and b"PostgreSQL" in done.stderr
    assert bill(env, tmp_path)["billed"] == scenario.line_count


def test_a_large_file_is_billed_on_two_workers_by_default_on_postgresql(
    tmp_path: Path, fresh_pg_url: Callable[[], str]
) -> None:
    # ledger.cli.bill.AUTO_WORKERS from AUTO_WORKERS_FROM_BYTES (10 MB, ~20,000 lines) on a
    # machine with 2 cores or more; SQLite bills the same file in one process, unasked.
    scenario = generate(21_000, 40, seed=5, deliberate=False)
    write_files(tmp_path, scenario)
    assert len(scenario.csv_bytes) >= 10 << 20
    url = fresh_pg_url()
    sqlite = ledger_env(f"sqlite:///{tmp_path / 'ledger.db'}")
    for env in (ledger_env(url), sqlite):
        run_ledger("ingest", "customers.jsonl", env=env, cwd=tmp_path)
        done = run_ledger(*BILL, env=env, cwd=tmp_path, timeout=600)
        assert json.loads(done.stdout)["billed"] == scenario.line_count
        started = [json.loads(line) for line in done.stderr.decode().splitlines()
                   if b"billing.workers_started" in line.encode()]  # fmt: skip
        cores = usable_cores()
        expected = [2] if env is not sqlite and cores >= 2 else []
        assert [event["workers"] for event in started] == expected
    assert set(posted_charge_ids(url).values()) == {1}
