"""Issue #14 through `ledger ingest` as a user runs it (subprocesses on a SQLite file, and on
PostgreSQL): killed with SIGKILL at random points and re-run, or run twice at once, the
store ends in the WHOLE state of one clean run (tests/state.py says what "identical" means);
one out-of-range value does not stop a file; commands refuse out-of-range dates in one line.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import (
    LEDGER_CLI,
    build,
    charge,
    customer_registered,
    jsonl,
    payment,
    refund,
    run_cli,
)
from tests.state import assert_same_state, ledger_state


def workload(customers: int = 30) -> list[str]:
    """Registrations, charges, refunds refused for lack of credit and the payments that
    come after them, redeliveries, a message_id reused by another customer, junk lines."""
    lines: list[str] = []
    for n in range(customers):
        c = f"cust-{n:03d}"
        lines.append(customer_registered(c))
        lines.append(charge(c, "CH-1", f"{10 + n}.00"))
        lines.append(refund(c, "RF-1", "5.00"))  # no credit yet: insufficient_credit
        lines.append(payment(c, "P-1", f"{50 + n}.00"))  # credit now: the refund must stay refused
        lines.append(charge(c, "CH-2", "7.50"))
        if n % 5 == 0:
            lines.append(charge(c, "CH-1", f"{10 + n}.00"))  # redelivered: duplicate
            lines.append('{"message_id": "broken", "type": ')  # malformed_json
        if n % 7 == 3:
            lines.append(charge(c, "CH-X", "1.00", message_id=f"chg-cust-{n - 1:03d}-CH-1"))
        lines.append(refund(c, "RF-2", "1.00"))  # within credit: applied
    return lines


def run_ok(url: str, cwd: Path, *args: str) -> str:
    result = run_cli(url, *args, cwd=cwd, timeout=300)
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return result.stdout


def start_ingest(url: str, path: Path, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_FORMAT="json", LEDGER_LOG_LEVEL="warning")
    return subprocess.Popen(
        [LEDGER_CLI, "ingest", str(path), *extra],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_ingest_killed_at_random_points_ends_in_the_state_of_a_clean_run(tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl"
    source.write_text(jsonl(workload()), encoding="utf-8")
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    run_ok(clean_url, tmp_path, "ingest", str(source), "--batch-size", "9")
    clean = ledger_state(clean_url, tmp_path)
    assert any(d["code"] == "insufficient_credit" for d in clean["dead_letters"])

    url = f"sqlite:///{tmp_path / 'crashed.db'}"
    rng = random.Random(14)
    killed = 0
    for _ in range(6):
        proc = start_ingest(url, source, tmp_path, "--batch-size", "9")
        # Kill after a random number of committed batches (it prints "… N lines" after
        # each), plus a random moment inside the next one.
        batches = rng.randint(1, 12)
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("…"):
                batches -= 1
                if batches == 0:
                    break
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.communicate(timeout=60)
    assert killed >= 3, "the kills should interrupt ingest, not come after it"
    run_ok(url, tmp_path, "ingest", str(source), "--batch-size", "9")

    assert_same_state(ledger_state(url, tmp_path), clean)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_ingests_at_once_on_one_store_both_succeed_with_the_state_of_one_run(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    def new_url(name: str) -> str:
        if store == "sqlite":
            return f"sqlite:///{tmp_path / name}"
        fresh: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
        return fresh()

    source = tmp_path / "input.jsonl"
    source.write_text(jsonl(workload(40)), encoding="utf-8")
    clean_url = new_url("clean.db")
    run_ok(clean_url, tmp_path, "ingest", str(source), "--batch-size", "5")

    url = new_url("shared.db")
    procs = [start_ingest(url, source, tmp_path, "--batch-size", "5") for _ in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, (out, err[-3000:])
        assert "Traceback" not in err
    # The events, the decisions and the views are those of one run. Which process decided
    # which line first is a race, and each run keeps its own dead letters: compare them as
    # a set of (code, offset).
    got = ledger_state(url, tmp_path, with_dead_letters=False)
    clean = ledger_state(clean_url, tmp_path, with_dead_letters=False)
    assert got["views"] == clean["views"]
    assert sorted(map(repr, got["decisions"])) == sorted(map(repr, clean["decisions"]))
    assert sorted(map(repr, got["events"])) == sorted(map(repr, clean["events"]))
    letters = json.loads(run_ok(url, tmp_path, "deadletters", "list", "--json"))
    clean_letters = json.loads(run_ok(clean_url, tmp_path, "deadletters", "list", "--json"))
    assert sorted((d["code"], d["offset"]) for d in letters) == sorted(
        (d["code"], d["offset"]) for d in clean_letters
    )


def test_an_out_of_range_timestamp_is_a_dead_letter_and_the_file_goes_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    poison = build("payment", "c1", "pay-overflow", payment_id="P-9", amount="5.00",
                   currency="USD", method="card", reference="r",
                   occurred_at="9999-12-31T23:59:59-01:00")  # fmt: skip
    source = tmp_path / "input.jsonl"
    source.write_text(
        jsonl([customer_registered("c1"), poison, charge("c1", "CH-1", "10.00")]),
        encoding="utf-8",
    )

    result = run_cli(url, "ingest", str(source), "--batch-size", "10", cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "applied 2, duplicate 0, dead-lettered 1" in result.stdout
    [letter] = json.loads(run_ok(url, tmp_path, "deadletters", "list", "--json"))
    assert letter["code"] == "invalid_message" and letter["message"].startswith("occurred_at:")


@pytest.mark.parametrize(
    "args",
    [
        ("invoice", "run", "--period", "9999-12"),
        ("invoice", "run", "--period", "2026-01", "--date", "9999-12-31"),
        ("collections", "run", "--as-of", "9999-12-31"),
        ("collections", "preview", "--as-of", "0001-01-01"),
        ("show", "balances", "--as-of", "9999-12-31"),
    ],
)
def test_commands_refuse_out_of_range_dates_in_one_line(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run_ok(url, tmp_path, "ingest", "-")  # an empty store
    result = run_cli(url, *args, cwd=tmp_path)
    assert result.returncode in (1, 2), result.stdout
    assert "Traceback" not in result.stderr
    assert "out of range" in result.stderr


def test_invoice_and_collections_runs_during_an_ingest_take_turns_with_it(tmp_path: Path) -> None:
    """Other writers on the same SQLite file as a running ingest: every process waits its
    turn (backoff) and exits 0; none dies of a lost race."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    source = tmp_path / "input.jsonl"
    source.write_text(jsonl(workload(60)), encoding="utf-8")
    ingest = start_ingest(url, source, tmp_path, "--batch-size", "3")
    runs = [
        ("invoice", "run", "--period", "2025-01"),
        ("collections", "run", "--as-of", "2025-03-01"),
        ("invoice", "run", "--period", "2025-02"),
    ]
    results = [run_cli(url, *args, cwd=tmp_path, timeout=300) for args in runs]
    _out, err = ingest.communicate(timeout=300)

    assert ingest.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    for args, result in zip(runs, results, strict=True):
        assert result.returncode == 0, (args, result.stderr[-3000:])
        assert "Traceback" not in result.stderr
