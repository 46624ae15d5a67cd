"""`ledger export journal` and `ledger export invoices` (SPEC §12) through the CLI, on SQLite
and PostgreSQL, against figures worked out here from the messages sent (the oracle), not from
the code under test: the journal export sums to the trial balance, balances per currency in
every window, selects by posting date (a line dated in a closed month posts on the first of
the next), and the invoices leave as Xero's import CSV and as the invoices view."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.app.exports.journal import JOURNAL_COLUMNS
from ledger.app.exports.xero import XERO_COLUMNS
from tests.fixtures.cli import Run, run_ledger
from tests.helpers import charge, credit_note, customer_registered, jsonl, payment

D = Decimal
Ledger = Callable[..., Run]
JAN, FEB = "2025-01-15T10:00:00Z", "2025-02-03T10:00:00Z"

# acme (USD, 30 days): four seats at 25.00; a prorated line (3 x 12.00 billed 17.42); a
# cancellation refund of 10.00; a February charge left unbilled. beta (EUR, 14 days): 2 x 25.
MESSAGES = [
    customer_registered("acme"),
    customer_registered("beta", currency="EUR", payment_terms_days=14),
    charge("acme", "CH-1", "100.00", quantity="4", unit_price="25.00", occurred_at=JAN),
    charge("acme", "CH-2", "17.42", quantity="3", unit_price="12.00", occurred_at=JAN,
           description="Microsoft 365 E3"),
    charge("acme", "CH-3", "-10.00", charge_type="cancel_refund", occurred_at=JAN),
    charge("beta", "CH-1", "50.00", quantity="2", unit_price="25.00", currency="EUR",
           occurred_at=JAN),
    charge("acme", "CH-4", "30.00", billing_period="2025-02", occurred_at=FEB),
]  # fmt: skip
AFTER_INVOICES = [
    payment("acme", "PAY-1", "50.00", occurred_at="2025-02-10T09:00:00Z"),
    payment("beta", "PAY-1", "50.00", currency="EUR", occurred_at="2025-02-05T09:00:00Z"),
]
# Sent after January is closed, dated in January: it posts on 1 February.
LATE_CREDIT = credit_note("acme", "CN-1", "5.00", occurred_at="2025-01-20T12:00:00Z")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        make: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
        yield make()


@pytest.fixture
def ledger(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Ledger:  # fmt: skip
    """The store with the scenario above, and a function running `ledger ARGS` on it."""

    def run(*args: str) -> Run:
        return run_ledger(list(args), store, monkeypatch, capsys)

    def ingest(lines: list[str], name: str) -> None:
        path = tmp_path / f"{name}.jsonl"
        path.write_text(jsonl(lines), encoding="utf-8")
        done = run("ingest", str(path))
        assert done.code == 0, done.err

    ingest(MESSAGES, "january")
    assert run("invoice", "run", "--period", "2025-01", "--date", "2025-02-01").code == 0
    ingest(AFTER_INVOICES, "payments")
    assert run("period", "close", "2025-01").code == 0
    ingest([LATE_CREDIT], "late-credit")
    return run


def ok(done: Run) -> str:
    assert done.code == 0, done.err
    return done.out


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def sums(rows: list[dict[str, str]]) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(account, currency) -> (debit, credit) summed over export rows."""
    out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for r in rows:
        debit, credit = out.get((r["account"], r["currency"]), (D(0), D(0)))
        out[(r["account"], r["currency"])] = (debit + D(r["debit"]), credit + D(r["credit"]))
    return out


def trial_balance(ledger: Ledger, *as_of: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    rows = json.loads(ok(ledger("show", "trial-balance", "--json", *as_of)))
    return {(r["account"], r["currency"]): (D(r["debit"]), D(r["credit"])) for r in rows}


def balanced(rows: list[dict[str, str]]) -> dict[str, Decimal]:
    """Debits minus credits per currency (all zero when balanced)."""
    out: dict[str, Decimal] = {}
    for r in rows:
        out[r["currency"]] = out.get(r["currency"], D(0)) + D(r["debit"]) - D(r["credit"])
    return out


def export(ledger: Ledger, start: str, end: str, *more: str) -> list[dict[str, str]]:
    return csv_rows(ok(ledger("export", "journal", "--from", start, "--to", end, *more)))


def test_the_journal_export_round_trips_to_the_trial_balance(ledger: Ledger) -> None:
    everything = export(ledger, "1900-01-01", "2100-12-31")
    assert everything and list(everything[0]) == list(JOURNAL_COLUMNS)
    assert sums(everything) == trial_balance(ledger)
    assert set(balanced(everything).values()) == {D(0)}
    # Up to a date: the trial balance as of that date (both by posting date, SPEC §13).
    january = export(ledger, "1900-01-01", "2025-01-31")
    assert sums(january) == trial_balance(ledger, "--as-of", "2025-01-31")


def test_january_holds_the_charges_worked_out_by_hand(ledger: Ledger) -> None:
    january = export(ledger, "2025-01-01", "2025-01-31")
    assert {r["event_type"] for r in january} == {"ChargePosted"}
    assert {r["posting_date"] for r in january} == {"2025-01-15"}
    got = sums(january)
    # revenue: 100.00 + 17.42 credited, the 10.00 refund debited; EUR 50.00 on its own.
    assert got[("revenue", "USD")] == (D("10.00"), D("117.42"))
    assert got[("revenue", "EUR")] == (D("0.00"), D("50.00"))
    assert got[("unbilled_receivable:acme", "USD")] == (D("117.42"), D("10.00"))
    # cost 80 % of each charge (tests.helpers): 80.00 + 13.94, less 8.00 for the refund.
    assert got[("cost_of_sales", "USD")] == (D("93.94"), D("8.00"))
    assert got[("payable_to_microsoft", "USD")] == (D("8.00"), D("93.94"))
    assert balanced(january) == {"USD": D(0), "EUR": D(0)}
    rows = [r for r in january if r["reference"] == "CH-2" and r["account"] == "revenue"]
    assert [(r["customer_id"], r["memo"], r["credit"]) for r in rows] == [
        ("acme", "Microsoft 365 E3", "17.42")
    ]


def test_a_line_dated_in_a_closed_month_posts_on_the_first_of_the_next(ledger: Ledger) -> None:
    january = export(ledger, "2025-01-01", "2025-01-31")
    february = export(ledger, "2025-02-01", "2025-02-28")
    assert not [r for r in january if r["reference"] == "CN-1"]
    note = [r for r in february if r["event_type"] == "CreditNoteIssued"]
    assert [(r["account"], r["debit"], r["credit"]) for r in note] == [
        ("revenue", "5.00", "0.00"), ("unapplied_cash_and_credits:acme", "0.00", "5.00"),
    ]  # fmt: skip
    assert {(r["posting_date"], r["occurred_at"][:10]) for r in note} == {
        ("2025-02-01", "2025-01-20")
    }
    # Windows select by posting date, and together they are the whole export.
    assert all("2025-02-01" <= r["posting_date"] <= "2025-02-28" for r in february)
    later = export(ledger, "2025-03-01", "2100-12-31")
    everything = export(ledger, "1900-01-01", "2100-12-31")
    key = [tuple(r.values()) for r in january + february + later]
    assert Counter(key) == Counter(tuple(r.values()) for r in everything)
    for window in (february, later):
        assert set(balanced(window).values()) <= {D(0)}


def test_jsonl_carries_the_same_rows_and_a_file_gets_them(ledger: Ledger, tmp_path: Path) -> None:
    as_csv = export(ledger, "2025-01-01", "2025-12-31")
    done = ledger("export", "journal", "--from", "2025-01-01", "--to", "2025-12-31",
                  "--format", "jsonl")  # fmt: skip
    as_jsonl = [json.loads(line) for line in ok(done).splitlines()]
    assert as_jsonl == as_csv
    assert f"exported {len(as_csv)} journal lines" in done.err
    target = tmp_path / "journal.csv"
    written = ledger("export", "journal", "--from", "2025-01-01", "--to", "2025-12-31", "-o",
                     str(target))  # fmt: skip
    assert ok(written) == ""
    assert csv_rows(target.read_text(encoding="utf-8")) == as_csv
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".journal.csv")] == []


def test_bad_options_are_usage_errors(ledger: Ledger) -> None:
    backwards = ledger("export", "journal", "--from", "2025-02-01", "--to", "2025-01-01")
    assert backwards.code == 2 and "--from" in backwards.err
    assert ledger("export", "journal", "--from", "2025-01-01", "--to", "2025-01-31",
                  "--format", "xml").code == 2  # fmt: skip
    assert ledger("export", "invoices", "--period", "2025-13").code == 2
    assert ledger("export", "invoices", "--period", "2025-01", "--format", "pdf").code == 2


def test_invoices_as_xero_import_rows(ledger: Ledger) -> None:
    done = ledger("export", "invoices", "--period", "2025-01", "--account-code", "4000")
    rows = csv_rows(ok(done))
    assert list(rows[0]) == list(XERO_COLUMNS)
    acme = [r for r in rows if r["InvoiceNumber"] == "INV-acme-2025-01"]
    beta = [r for r in rows if r["InvoiceNumber"] == "INV-beta-2025-01"]
    assert len(rows) == 4 and len(acme) == 3 and len(beta) == 1
    for r in acme:
        assert (r["ContactName"], r["EmailAddress"], r["Reference"], r["Currency"]) == (
            "acme Ltd", "ap@example.com", "acme", "USD",
        )  # fmt: skip
        # 1 February + 30 days of terms; Xero's day-first dates.
        assert (r["InvoiceDate"], r["DueDate"]) == ("01/02/2025", "03/03/2025")
        assert (r["AccountCode"], r["TaxType"], r["TaxAmount"], r["Total"]) == (
            "4000", "Tax Exempt", "0.00", "107.42",
        )  # fmt: skip
    lines = [(r["Description"], r["Quantity"], r["UnitAmount"]) for r in acme]
    assert lines == [
        ("Microsoft 365 Business Basic (2025-01-01 to 2025-01-28)", "4", "25"),
        # prorated: 3 x 12.00 is not 17.42, so one line of the amount, the rest said
        ("Microsoft 365 E3 (2025-01-01 to 2025-01-28): 3 x 12", "1", "17.42"),
        ("Microsoft 365 Business Basic (2025-01-01 to 2025-01-28)", "-1", "10"),
    ]
    # What Xero computes from the rows is the invoice's total, to the cent.
    assert sum(D(r["Quantity"]) * D(r["UnitAmount"]) for r in acme) == D("107.42")
    assert [(r["Currency"], r["Quantity"], r["UnitAmount"], r["DueDate"]) for r in beta] == [
        ("EUR", "2", "25", "15/02/2025")
    ]
    assert "exported 2 invoices of 2025-01 for Xero (4 lines)" in done.err
    us = csv_rows(ok(ledger("export", "invoices", "--period", "2025-01", "--date-format",
                            "MM/DD/YYYY")))  # fmt: skip
    assert {(r["InvoiceDate"], r["DueDate"], r["AccountCode"]) for r in us if r["Currency"] ==
            "USD"} == {("02/01/2025", "03/03/2025", "200")}  # fmt: skip
    assert csv_rows(ok(ledger("export", "invoices", "--period", "2025-02"))) == []


def test_invoices_as_the_invoices_view(ledger: Ledger, tmp_path: Path) -> None:
    target = tmp_path / "invoices.csv"
    ok(ledger("export", "invoices", "--period", "2025-01", "--format", "csv", "-o", str(target)))
    rows = {r["invoice_id"]: r for r in csv_rows(target.read_text(encoding="utf-8"))}
    assert rows == {
        "INV-acme-2025-01": {
            "invoice_id": "INV-acme-2025-01", "billing_period": "2025-01",
            "invoice_date": "2025-02-01", "due_date": "2025-03-03", "subtotal": "107.42",
            "tax": "0.00", "total": "107.42", "paid": "50.00", "credited": "5.00",
            "written_off": "0.00", "open": "52.42", "status": "partially_paid",
            "customer_id": "acme", "currency": "USD",
        },
        "INV-beta-2025-01": {
            "invoice_id": "INV-beta-2025-01", "billing_period": "2025-01",
            "invoice_date": "2025-02-01", "due_date": "2025-02-15", "subtotal": "50.00",
            "tax": "0.00", "total": "50.00", "paid": "50.00", "credited": "0.00",
            "written_off": "0.00", "open": "0.00", "status": "paid",
            "customer_id": "beta", "currency": "EUR",
        },
    }  # fmt: skip


def test_long_exports_show_progress_and_write_the_same_rows(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = export(ledger, "2025-01-01", "2025-12-31")
    xero = ok(ledger("export", "invoices", "--period", "2025-01"))
    monkeypatch.setattr("ledger.cli.export.PROGRESS_FROM", {"events": 1, "customers": 1})
    assert export(ledger, "2025-01-01", "2025-12-31") == quiet
    assert ok(ledger("export", "invoices", "--period", "2025-01")) == xero
