"""`ledger ingest FILE` as a user runs it (a subprocess on a SQLite file): good lines apply,
bad ones become dead letters with the right code and their original bytes, exit 0."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    OMIT,
    build,
    charge,
    customer_registered,
    jsonl,
    payment,
    run_cli,
)

BALANCE_FIELDS = [
    "customer_id", "name", "currency", "billed", "unbilled", "paid", "credited", "refunded",
    "written_off", "outstanding", "unapplied_credit", "balance", "overdue", "days_past_due",
    "aging", "status", "last_payment_date",
]  # fmt: skip
AGING_FIELDS = ["current", "d1_30", "d31_60", "d61_90", "d90_plus"]

# (line, dead-letter code or None for a good line); line numbers are 1-based offsets.
MIXED: list[tuple[str, str | None]] = [
    (customer_registered("contoso"), None),
    (charge("contoso", "CH-1", "100.00"), None),
    ('{"message_id": "m-1", "type": "charge", ', "malformed_json"),
    (build("invoice_paid", "contoso", "m-2"), "unknown_type"),
    (charge("ghost", "CH-9", "10.00"), "unknown_customer"),
    (payment("contoso", "P-EUR", "10.00", currency="EUR"), "currency_mismatch"),
    (payment("contoso", "P-BAD", "12.345"), "invalid_message"),
    (payment("contoso", "P-NEG", "-5.00"), "invalid_message"),
    (charge("contoso", "CH-1", "120.00", message_id="m-3"), "conflict"),
    (payment("contoso", "P-1", "40.00"), None),
    (charge("contoso", "CH-1", "100.00"), None),  # a redelivery: duplicate
    (charge("contoso", "CH-2", "-30.00", charge_type="cancel_refund"), None),
    (payment("contoso", "P-NOREF", "5.00", reference=OMIT), "invalid_message"),
]
GOOD = sum(1 for _, code in MIXED if code is None)
BAD = {number: code for number, (_, code) in enumerate(MIXED, start=1) if code is not None}


def run_ledger(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(f"sqlite:///{db}", *args, stdin=stdin, cwd=db.parent)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def show_json(db: Path, view: str, *args: str) -> list[dict[str, Any]]:
    rows = json.loads(ok(run_ledger(db, "show", view, "--json", *args)))
    assert isinstance(rows, list)
    return rows


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_text(jsonl(line for line, _ in MIXED), encoding="utf-8")
    return path


def test_ingest_applies_good_lines_dead_letters_bad_ones_and_exits_0(
    db: Path, mixed_file: Path
) -> None:
    out = ok(run_ledger(db, "ingest", str(mixed_file)))

    assert f"applied {GOOD - 1}, duplicate 1, dead-lettered {len(BAD)}" in out
    [row] = show_json(db, "balances")
    # CH-1 100 and the CH-2 cancel_refund -30 unbilled; P-1 40 unapplied; nothing bad counted.
    assert (row["unbilled"], row["paid"], row["unapplied_credit"]) == ("70.00", "40.00", "40.00")


def test_dead_letters_list_each_bad_line_with_its_code_and_raw_bytes(
    db: Path, mixed_file: Path
) -> None:
    ok(run_ledger(db, "ingest", str(mixed_file)))

    letters = json.loads(ok(run_ledger(db, "deadletters", "list", "--json")))

    assert {letter["offset"]: letter["code"] for letter in letters} == BAD
    for letter in letters:
        line = MIXED[letter["offset"] - 1][0]
        assert (letter["raw"], letter["raw_encoding"]) == (line, "utf-8")
        assert letter["source"] == str(mixed_file)
        assert letter["message"].strip()
    messages = {letter["code"]: letter["message"] for letter in letters}
    assert messages["currency_mismatch"].startswith("currency:")
    assert messages["unknown_customer"].startswith("customer_id:")
    only_conflicts = run_ledger(db, "deadletters", "list", "--json", "--code", "conflict")
    assert [d["offset"] for d in json.loads(ok(only_conflicts))] == [9]


def test_ingesting_the_same_file_again_has_no_second_effect(db: Path, mixed_file: Path) -> None:
    ok(run_ledger(db, "ingest", str(mixed_file)))
    before = show_json(db, "balances"), show_json(db, "trial-balance")

    letters = json.loads(ok(run_ledger(db, "deadletters", "list", "--json")))

    out = ok(run_ledger(db, "ingest", str(mixed_file)))

    # Issue #14: each refused line is recognised as refused before: no second dead letter.
    assert f"applied 0, duplicate {GOOD}, dead-lettered 0, refused before {len(BAD)}" in out
    assert (show_json(db, "balances"), show_json(db, "trial-balance")) == before
    assert json.loads(ok(run_ledger(db, "deadletters", "list", "--json"))) == letters


def test_line_that_is_not_utf8_is_kept_as_base64(db: Path, tmp_path: Path) -> None:
    raw = b'{"message_id": "caf\xe9"}'
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(customer_registered("contoso").encode() + b"\n" + raw + b"\n")

    assert "applied 1, duplicate 0, dead-lettered 1" in ok(run_ledger(db, "ingest", str(path)))

    [letter] = json.loads(ok(run_ledger(db, "deadletters", "list", "--json")))
    assert (letter["code"], letter["raw_encoding"]) == ("malformed_json", "base64")
    assert base64.b64decode(letter["raw"]) == raw


def test_ingest_reads_stdin(db: Path) -> None:
    lines = jsonl([customer_registered("contoso"), charge("contoso", "CH-1", "10.00")])
    assert "applied 2, duplicate 0, dead-lettered 0" in ok(
        run_ledger(db, "ingest", "-", stdin=lines)
    )


def test_show_balances_json_has_exactly_the_spec_fields(db: Path, mixed_file: Path) -> None:
    ok(run_ledger(db, "ingest", str(mixed_file)))
    ok(run_ledger(db, "invoice", "run", "--period", "2025-01"))

    [row] = show_json(db, "balances", "--as-of", "2025-03-10")

    assert list(row) == BALANCE_FIELDS
    assert list(row["aging"]) == AGING_FIELDS
    assert row == {
        "customer_id": "contoso", "name": "contoso Ltd", "currency": "USD",
        "billed": "70.00", "unbilled": "0.00", "paid": "40.00", "credited": "0.00",
        "refunded": "0.00", "written_off": "0.00", "outstanding": "30.00",
        "unapplied_credit": "0.00", "balance": "30.00", "overdue": "30.00", "days_past_due": 7,
        "aging": {"current": "0.00", "d1_30": "30.00", "d31_60": "0.00", "d61_90": "0.00",
                  "d90_plus": "0.00"},
        "status": "active", "last_payment_date": "2025-01-15",
    }  # fmt: skip


def test_invoice_run_dates_invoices_the_first_day_after_the_period_and_runs_once(
    db: Path, mixed_file: Path
) -> None:
    ok(run_ledger(db, "ingest", str(mixed_file)))

    assert "issued 1 invoices for 2025-01 dated 2025-02-01" in ok(
        run_ledger(db, "invoice", "run", "--period", "2025-01")
    )
    assert "issued 0 invoices" in ok(run_ledger(db, "invoice", "run", "--period", "2025-01"))
    [row] = show_json(db, "balances", "--as-of", "2025-03-03")  # the due date: 30 days' terms
    assert (row["outstanding"], row["overdue"], row["aging"]["current"]) == (
        "30.00", "0.00", "30.00",
    )  # fmt: skip


def test_missing_file_is_bad_usage(db: Path, tmp_path: Path) -> None:
    result = run_ledger(db, "ingest", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr
