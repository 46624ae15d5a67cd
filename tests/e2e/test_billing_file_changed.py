"""`ledger bill partner-center` on the file as it is on disk, on SQLite and the real
PostgreSQL: changed while it is billed (Partner Center's file downloaded again over it), in
one process and on two workers, the run stops at the first sign (ledger.app.recon_source
FileChanged), exits 1 naming the file, and billing the final file again bills each of its
lines exactly once (checked in the event store); a folder, an empty or header-only file or a
bad last byte is one clear error with nothing posted; other line endings bill the same
charges."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from ledger.app.billing import charge_ids
from ledger.app.reconcile import parse_recon_file
from tests.e2e.procs import LEDGER_BIN, ledger_env, run_ledger
from tests.e2e.test_billing_workers import (
    BILL,
    posted_charge_ids,
    wait_for_a_batch,
    write_files,
)
from tests.e2e.test_billing_workers import applied_charges as applied_on_postgresql
from tests.fixtures.recon_gen import Scenario, generate

pytestmark = pytest.mark.e2e


def applied_charges(url: str) -> int:
    """The charges billed so far (PostgreSQL: as test_billing_workers counts them)."""
    if not url.startswith("sqlite:///"):
        return applied_on_postgresql(url)
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM ledger_messages"
                " WHERE message_key LIKE 'pc-%' AND outcome = 'applied'"
            ).fetchone()
        except sqlite3.OperationalError:  # the table is not made yet
            return 0
    return int(row[0])


def ledger_with_customers(
    work: Path, scenario: Scenario, store: str, fresh_pg_url: Callable[[], str]
) -> tuple[str, dict[str, str]]:
    """(database URL, environment) of a new ledger on `store` holding the scenario's
    customers, its files written in `work`."""
    write_files(work, scenario)
    url = fresh_pg_url() if store == "postgresql" else f"sqlite:///{work / 'ledger.db'}"
    env = ledger_env(url)
    run_ledger("ingest", "customers.jsonl", env=env, cwd=work)
    return url, env


@pytest.mark.parametrize(
    ("store", "workers"), [("sqlite", "1"), ("postgresql", "1"), ("postgresql", "2")]
)
def test_a_file_changed_while_billed_stops_the_run_and_the_final_file_bills_each_line_once(
    tmp_path: Path, fresh_pg_url: Callable[[], str], store: str, workers: str
) -> None:
    scenario = generate(12_000, 40, seed=71, deliberate=False)
    url, env = ledger_with_customers(tmp_path, scenario, store, fresh_pg_url)
    invoice = tmp_path / "invoice.csv"
    last_line = scenario.csv_bytes.rstrip(b"\r\n").rsplit(b"\r\n", 1)[1]

    process = subprocess.Popen([LEDGER_BIN, *BILL, "--workers", workers], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for_a_batch(process, lambda: applied_charges(url))
        with invoice.open("ab") as file:  # the file as downloaded again: one more line
            file.write(last_line + b"\r\n")
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == 1, (out, err[-3000:])
    said = [line for line in err.decode().splitlines() if line.startswith("error: ")]
    assert len(said) == 1, err[-3000:]
    assert "invoice.csv: written to since it was checked" in said[0]
    assert out == b""  # no report of a run that did not bill the file
    stopped_at = applied_charges(url)
    assert 0 < stopped_at < scenario.line_count

    final = invoice.read_bytes()
    again = json.loads(run_ledger(*BILL, "--workers", workers, env=env, cwd=tmp_path,
                                  timeout=600).stdout)  # fmt: skip
    lines = scenario.line_count + 1
    assert again["lines"] == lines and again["not_billed"] == []
    assert (again["billed"], again["duplicates"]) == (lines - stopped_at, stopped_at)
    posted = posted_charge_ids(url)
    assert posted == Counter(charge_ids(parse_recon_file(final)))
    assert set(posted.values()) == {1}


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_file_that_cannot_be_billed_is_one_clear_error_and_nothing_is_posted(
    tmp_path: Path, fresh_pg_url: Callable[[], str], store: str
) -> None:
    scenario = generate(30, 4, seed=73, deliberate=False)
    url, env = ledger_with_customers(tmp_path, scenario, store, fresh_pg_url)
    raw = scenario.csv_bytes
    header = raw.split(b"\r\n", 1)[0] + b"\r\n"
    bad_last = raw.rstrip(b"\r\n") + b"\xe9"  # Latin-1 on the last line, no final newline
    (tmp_path / "folder.csv").mkdir()
    cases = {  # file -> (exit code, what the error says)
        "folder.csv": (2, "'folder.csv' is not a file"),
        "empty.csv": (1, "error: line 1: the file is empty"),
        "header.csv": (1, "error: line 2: the file has a header but no lines"),
        "bad_last.csv": (1, f"error: line 31: byte {len(bad_last) - 4} is not UTF-8"),
    }
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_bytes(header)
    (tmp_path / "bad_last.csv").write_bytes(bad_last)
    for name, (code, said) in cases.items():
        done = subprocess.run([LEDGER_BIN, "bill", "partner-center", name, "--price-book",
                               "prices.toml"], env=env, cwd=tmp_path, capture_output=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == code, (name, done.stderr[-2000:])
        assert said in done.stderr.decode(), (name, done.stderr[-2000:])
        assert done.stdout == b""
    assert applied_charges(url) == 0
    assert json.loads(run_ledger(*BILL, env=env, cwd=tmp_path).stdout)["billed"] == 30


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_line_endings_and_a_missing_final_newline_bill_the_same_charges(
    tmp_path: Path, fresh_pg_url: Callable[[], str], store: str
) -> None:
    # The file as Excel or a script might save it again (CR only, LF without a final newline,
    # no BOM): the same lines, the same charges. Billing the downloaded file (BOM, CRLF) after
    # any of them finds every line a duplicate, never a conflict.
    scenario = generate(300, 6, seed=79, deliberate=False)
    url, env = ledger_with_customers(tmp_path, scenario, store, fresh_pg_url)
    body = scenario.csv_bytes.removeprefix(b"\xef\xbb\xbf")
    (tmp_path / "cr.csv").write_bytes(body.replace(b"\r\n", b"\r"))
    (tmp_path / "lf.csv").write_bytes(body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    billed = [json.loads(run_ledger("bill", "partner-center", name, "--price-book",
                                    "prices.toml", "--json", env=env, cwd=tmp_path).stdout)
              for name in ("cr.csv", "lf.csv", "invoice.csv")]  # fmt: skip
    assert [(r["billed"], r["duplicates"], r["not_billed"]) for r in billed] == [
        (300, 0, []), (0, 300, []), (0, 300, [])
    ]  # fmt: skip
    assert posted_charge_ids(url) == Counter(charge_ids(parse_recon_file(scenario.csv_bytes)))
