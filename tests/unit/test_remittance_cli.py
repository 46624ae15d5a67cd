"""`ledger reconcile`, `ledger remittance pay` and `ledger show remittance` as a user runs
them (in-process `ledger.cli.main:main`, SQLite store): output, exit codes, one-line errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.app.application import LedgerApplication
from ledger.store.eventstore import eventsourcing_env
from tests.fixtures.cli import Run, run_ledger
from tests.fixtures.recon_gen import Scenario, generate
from tests.helpers import msgs

RECORDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
Ledger = Callable[..., Run]


@pytest.fixture
def scenario() -> Scenario:
    return generate(300, 5, seed=13)


@pytest.fixture
def store(tmp_path: Path, scenario: Scenario) -> str:
    """A SQLite ledger holding the scenario's customers and charges."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    result = app.handle_batch(msgs(scenario.messages))
    assert result.count("applied") == len(scenario.messages)
    return url


@pytest.fixture
def recon_file(tmp_path: Path, scenario: Scenario) -> Path:
    path = tmp_path / "recon.csv"
    path.write_bytes(scenario.csv_bytes)
    return path


@pytest.fixture
def ledger(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Ledger:
    def run(*args: str) -> Run:
        return run_ledger(list(args), store, monkeypatch, capsys)

    return run


def head(store: str) -> int:
    return LedgerApplication(eventsourcing_env(store)).head_position()


def remittance_rows(ledger: Ledger) -> dict[str, dict[str, object]]:
    done = ledger("show", "remittance", "--json")
    assert done.code == 0, done.err
    return {r["billing_period"]: r for r in json.loads(done.out)}


def test_reconcile_json_is_the_spec_report_and_records_the_invoice(
    ledger: Ledger, recon_file: Path, scenario: Scenario, store: str
) -> None:
    done = ledger("reconcile", str(recon_file), "--json", "--due-date", "2025-03-20")
    assert done.code == 0, done.err
    doc = json.loads(done.out)
    expected = scenario.expected
    assert list(doc) == [
        "invoice_number", "billing_period", "currency", "invoice_total", "matched",
        "missing_in_ledger", "missing_on_invoice", "amount_mismatches",
    ]  # fmt: skip
    assert (doc["invoice_total"], doc["matched"]) == (expected.invoice_total, expected.matched)
    assert [m["line"] for m in doc["missing_in_ledger"]] == expected.missing_in_ledger_lines
    assert doc["missing_on_invoice"] == expected.missing_on_invoice
    assert sorted(doc["amount_mismatches"], key=lambda m: m["charge_id"]) == (
        expected.amount_mismatches
    )
    assert "recorded Microsoft invoice G012345678 for 2025-01" in done.err

    row = remittance_rows(ledger)["2025-01"]
    assert (row["microsoft_invoiced"], row["due_date"]) == (expected.invoice_total, "2025-03-20")
    assert row["due_to_microsoft"] == expected.invoice_total
    verified = ledger("audit", "verify")
    assert verified.code == 0 and verified.out.startswith("OK:")


def test_reimporting_the_file_changes_nothing(ledger: Ledger, recon_file: Path, store: str) -> None:
    assert ledger("reconcile", str(recon_file)).code == 0
    before = head(store)
    again = ledger("reconcile", str(recon_file))
    assert again.code == 0
    assert "already imported; nothing recorded" in again.out
    assert head(store) == before


def test_table_and_line_level_csv(
    ledger: Ledger, recon_file: Path, scenario: Scenario, tmp_path: Path
) -> None:
    out = tmp_path / "report.csv"
    done = ledger("reconcile", str(recon_file), "--csv", str(out))
    assert done.code == 0, done.err
    assert "Reconciliation with Microsoft" in done.out
    assert "On the invoice, not in the ledger" in done.out
    assert "In the ledger, not on the invoice" in done.out
    assert "Amount differences" in done.out
    assert "due 2025-04-02" in done.out  # 2025-02-01 + microsoft_payment_terms_days (60)

    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    statuses = [r["status"] for r in rows]
    assert len(rows) == scenario.line_count + 1
    assert statuses.count("missing_in_ledger") == 2
    assert statuses.count("missing_on_invoice") == 1
    assert statuses.count("amount_mismatch") == 2
    mismatch = next(r for r in rows if r["status"] == "amount_mismatch")
    assert mismatch["charge_id"] and mismatch["difference"] not in ("", "0.00")


def test_a_missing_column_is_one_error_and_records_nothing(
    ledger: Ledger, recon_file: Path, store: str
) -> None:
    text = recon_file.read_bytes().decode("utf-8-sig").replace("SubscriptionId", "SubId", 1)
    recon_file.write_text(text, encoding="utf-8")
    before = head(store)
    done = ledger("reconcile", str(recon_file), "--json")
    assert (done.code, done.out) == (1, "")
    assert done.err.startswith("error: line 1, column SubscriptionId: required column missing")
    assert done.err.count("\n") == 1
    assert head(store) == before


def test_mixed_invoice_numbers_are_one_error_and_record_nothing(
    ledger: Ledger, recon_file: Path, store: str
) -> None:
    lines = recon_file.read_bytes().decode("utf-8-sig").split("\r\n")
    lines[5] = lines[5].replace("G012345678", "G099999999")
    recon_file.write_text("\r\n".join(lines), encoding="utf-8")
    before = head(store)
    done = ledger("reconcile", str(recon_file))
    assert (done.code, done.out) == (1, "")
    assert done.err.startswith("error: line 6, column InvoiceNumber: 'G099999999' differs")
    assert done.err.count("\n") == 1
    assert head(store) == before


def test_bad_number_names_its_line_and_column(ledger: Ledger, tmp_path: Path, store: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "InvoiceNumber,CustomerId,SubscriptionId,ChargeType,ChargeStartDate,ChargeEndDate,"
        "Subtotal,Currency\n"
        "G1,c1,s1,new,1/1/2025,1/31/2025,10.00,USD\n"
        'G1,c1,s2,new,1/1/2025,1/31/2025,"1,0.00",USD\n',
        encoding="utf-8",
    )
    before = head(store)
    done = ledger("reconcile", str(path))
    assert (done.code, done.err) == (
        1, "error: line 3, column Subtotal: '1,0.00' is not a number\n",
    )  # fmt: skip
    assert head(store) == before


def test_pay_partially_then_duplicate_then_overpay(
    ledger: Ledger, recon_file: Path, scenario: Scenario
) -> None:
    ledger("reconcile", str(recon_file), "--due-date", "2025-03-20")
    total = scenario.expected.invoice_total
    pay = ("remittance", "pay", "--period", "2025-01", "--reference", "WIRE-7")
    ambiguous = ledger(*pay, "--amount", "1000.00")  # the scenario has an EUR customer too
    assert ambiguous.code == 1
    assert ambiguous.err == (
        "error: currency: Microsoft is owed for 2025-01 in EUR, USD; give --currency\n"
    )
    pay = (*pay, "--currency", "usd")
    done = ledger(*pay, "--amount", "1000.00", "--date", "2025-03-02")
    assert done.code == 0, done.err
    assert "recorded payment 'WIRE-7' of 1000.00 USD to Microsoft for 2025-01" in done.out
    again = ledger(*pay, "--amount", "1000.00", "--date", "2025-03-03")
    assert (again.code, "already recorded" in again.out) == (0, True)

    row = remittance_rows(ledger)["2025-01"]
    due = f"{float(total) - 1000:.2f}"
    assert (row["paid_to_microsoft"], row["due_to_microsoft"]) == ("1000.00", due)

    over = ("remittance", "pay", "--period", "2025-01", "--currency", "USD", "--reference",
            "WIRE-8", "--amount")  # fmt: skip
    refused = ledger(*over, "99999999.00")
    assert refused.code == 1
    assert refused.err.startswith("error: amount: 99999999.00 USD exceeds the ")
    assert "--force" in refused.err and refused.err.count("\n") == 1
    forced = ledger(*over, "99999999.00", "--force")
    assert forced.code == 0, forced.err

    mismatch = ledger("remittance", "pay", "--period", "2025-01", "--reference", "W-9",
                      "--amount", "1.00", "--currency", "JPY")  # fmt: skip
    assert mismatch.code == 1 and mismatch.err.startswith("error: currency: nothing is owed")
    usage = ledger("remittance", "pay", "--period", "2025-13", "--reference", "W",
                   "--amount", "1.00")  # fmt: skip
    assert usage.code == 2


def test_show_remittance_table_marks_overdue_periods(ledger: Ledger, recon_file: Path) -> None:
    ledger("reconcile", str(recon_file), "--due-date", "2025-03-20")
    soon = ledger("show", "remittance", "--as-of", "2025-03-15")
    assert soon.code == 0, soon.err
    assert "status" in soon.out and "due in 5d" in soon.out
    late = ledger("show", "remittance", "--as-of", "2099-03-15")
    assert late.code == 0, late.err
    assert "OVERDUE" in late.out
    rows = remittance_rows(ledger)
    assert all("status" not in row for row in rows.values())
