"""The Microsoft side as a user runs it (SPEC §11): `ledger reconcile`, `ledger remittance
pay`, `ledger microsoft credit-limit set|check`, `ledger show microsoft`, `ledger collections
run` — in-process `ledger.cli.main:main` on SQLite and on the real PostgreSQL — and `GET
/microsoft` with the Microsoft gauges of `/metrics`."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.microsoft import pay, set_credit_limit
from ledger.app.reconcile import import_recon_file
from ledger.store.eventstore import eventsourcing_env
from tests.fixtures.cli import Run, run_ledger
from tests.helpers import customer_registered, jsonl, msgs
from tests.unit.test_api import build_api
from tests.unit.test_remittance_view import period_charge, recon_csv

A, B = "contoso", "fabrikam"
Ledger = Callable[..., Run]
MESSAGES = [
    customer_registered(A, occurred_at="2024-12-01T10:00:00Z"),
    customer_registered(B, occurred_at="2024-12-01T10:00:00Z"),
    period_charge(A, "A-1", "1000.00", "800.00", "2025-01"),
    period_charge(B, "B-1", "250.00", "200.00", "2025-01"),
    period_charge(A, "A-2", "750.00", "600.00", "2025-02"),
]
JAN = recon_csv("G-JAN", [(A, f"sub-{A}", "cycleCharge", "2025-01-01", "800.00"),
                          (B, f"sub-{B}", "cycleCharge", "2025-01-01", "210.00")])  # fmt: skip
FEB = recon_csv("G-FEB", [(A, f"sub-{A}", "cycleCharge", "2025-02-01", "600.00")])


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    make: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
    return make()


@pytest.fixture
def ledger(store: str, monkeypatch: pytest.MonkeyPatch,
           capsys: pytest.CaptureFixture[str]) -> Ledger:  # fmt: skip
    def run(*args: str) -> Run:
        return run_ledger(list(args), store, monkeypatch, capsys)

    return run


def ok(done: Run) -> str:
    assert done.code == 0, done.err
    return done.out


def microsoft(ledger: Ledger, as_of: str) -> dict[str, Any]:
    rows = json.loads(ok(ledger("show", "microsoft", "--as-of", as_of, "--json")))
    return {r["currency"]: r for r in rows}


def trial(ledger: Ledger) -> dict[str, Decimal]:
    rows = json.loads(ok(ledger("show", "trial-balance", "--json")))
    sums: dict[str, Decimal] = {}
    for r in rows:
        sums[r["currency"]] = sums.get(r["currency"], Decimal(0)) + Decimal(r["balance"])
    assert all(v == 0 for v in sums.values()), sums
    return {r["account"]: Decimal(r["balance"]) for r in rows if r["currency"] == "USD"}


def test_end_to_end(ledger: Ledger, tmp_path: Path, store: str) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(jsonl(MESSAGES))
    ok(ledger("ingest", str(feed)))
    jan, feb = tmp_path / "jan.csv", tmp_path / "feb.csv"
    jan.write_bytes(JAN)
    feb.write_bytes(FEB)
    ok(ledger("reconcile", str(jan), "--due-date", "2025-03-15"))
    # January booked at Microsoft's 1010.00 (accrued 1000.00), February accrued 600.00.
    assert trial(ledger)["payable_to_microsoft"] == Decimal("-1610.00")
    assert "already imported" in ok(ledger("reconcile", str(jan)))
    assert trial(ledger)["payable_to_microsoft"] == Decimal("-1610.00")

    out = ok(ledger("microsoft", "credit-limit", "set", "2000.00", "--currency", "usd",
                    "--date", "2025-01-01"))  # fmt: skip
    assert "2000.00 USD from 2025-01-01" in out

    pay_args = ("remittance", "pay", "--currency", "USD", "--date", "2025-03-01")
    out = ok(ledger(*pay_args, "--amount", "400.00", "--reference", "W-1"))
    assert "applied to G-JAN 400.00; 0.00 USD unallocated" in out
    assert trial(ledger)["payable_to_microsoft"] == Decimal("-1210.00")
    assert "already recorded" in ok(ledger(*pay_args, "--amount", "400.00", "--reference", "W-1"))

    # Refusals: one line on stderr, exit 1, nothing recorded.
    head = LedgerApplication(eventsourcing_env(store)).head_position()
    for args, start in [
        (("--amount", "1000.00", "--reference", "W-2"), "error: amount: 1000.00 USD exceeds"),
        (("--amount", "1.00", "--reference", "W-3", "--invoice", "G-NOPE"),
         "error: invoice: no Microsoft invoice 'G-NOPE'"),
    ]:  # fmt: skip
        done = ledger(*pay_args, *args)
        assert (done.code, done.err.startswith(start), done.err.count("\n")) == (1, True, 1), done
    done = ledger("remittance", "pay", "--currency", "JPY", "--amount", "1", "--reference", "W")
    assert done.code == 1 and done.err.startswith("error: currency: Microsoft bills")
    assert ledger("remittance", "pay", "--amount", "1", "--reference", "W").code == 2
    assert LedgerApplication(eventsourcing_env(store)).head_position() == head

    # Overpaid with --force: the rest is unallocated, then settles February's invoice.
    out = ok(ledger(*pay_args, "--amount", "800.00", "--reference", "W-4", "--force"))
    assert "applied to G-JAN 610.00; 190.00 USD unallocated" in out
    assert microsoft(ledger, "2025-03-02")["USD"]["unallocated"] == "190.00"
    ok(ledger("reconcile", str(feb), "--invoice-date", "2025-03-01", "--due-date", "2025-04-30"))
    row = microsoft(ledger, "2025-03-02")["USD"]
    assert [(i["invoice_number"], i["paid"], i["open"]) for i in row["invoices"]] == [
        ("G-JAN", "1010.00", "0.00"), ("G-FEB", "190.00", "410.00"),
    ]  # fmt: skip
    assert (row["unallocated"], row["credit_used"], row["credit_status"]) == (
        "0.00", "410.00", "ok",
    )  # fmt: skip
    assert trial(ledger)["payable_to_microsoft"] == Decimal("-410.00")

    # 61 days past due: suspendable; the check (and collections run) records each alert once.
    row = microsoft(ledger, "2025-06-30")["USD"]
    assert (row["oldest_days_past_due"], row["partner_status"]) == (61, "suspendable")
    before = microsoft(ledger, "2025-02-28")["USD"]  # as it stood then: no payment yet
    assert [(i["invoice_number"], i["paid"]) for i in before["invoices"]] == [("G-JAN", "0.00")]
    out = ok(ledger("collections", "run", "--as-of", "2025-06-30"))
    assert "microsoft:USD: MicrosoftInvoiceOverdue G-FEB" in out
    out = ok(ledger("microsoft", "check", "--as-of", "2025-06-30"))
    assert out.startswith("recorded 0 Microsoft alerts")
    table = ok(ledger("show", "microsoft", "--as-of", "2025-06-30"))
    assert "suspendable" in table and "G-FEB" in table
    verified = ledger("audit", "verify")
    assert verified.code == 0, verified.out


def test_credit_limit_warning_and_bad_input(ledger: Ledger, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(jsonl(MESSAGES))
    ok(ledger("ingest", str(feed)))
    ok(ledger("microsoft", "credit-limit", "set", "1800.00", "--currency", "USD",
              "--date", "2025-01-01"))  # fmt: skip
    out = ok(ledger("microsoft", "check", "--as-of", "2025-03-01"))
    # 1000.00 of 1800.00 from 2025-01-10 (56 %), 1600.00 from 2025-02-10 (89 %): both
    # warnings that day, in order.
    assert out.splitlines()[1:] == [
        "  USD: credit use reached 70% on 2025-02-10 (1600.00 of 1800.00)",
        "  USD: credit use reached 85% on 2025-02-10 (1600.00 of 1800.00)",
    ]
    row = microsoft(ledger, "2025-03-01")["USD"]
    assert (row["credit_used"], row["credit_used_percent"], row["credit_status"]) == (
        "1600.00", "88.89", "warning_85",
    )  # fmt: skip
    assert "warning_85" in ok(ledger("show", "microsoft", "--as-of", "2025-03-01"))
    bad = ledger("microsoft", "credit-limit", "set", "1.001", "--currency", "USD")
    assert bad.code == 2 and "1.001 has 3 decimals, at most 2 for USD" in bad.err
    assert ledger("microsoft", "credit-limit", "set", "10", "--currency", "US").code == 2


# ---- the API ------------------------------------------------------------------------------


def test_get_microsoft_and_metrics(tmp_path: Path) -> None:
    app = LedgerApplication(eventsourcing_env("memory://"),
                            clock=lambda: datetime(2025, 6, 30, 12, tzinfo=UTC))  # fmt: skip
    assert app.handle_batch(msgs(MESSAGES)).count("applied") == len(MESSAGES)
    import_recon_file(app, JAN, payment_terms_days=60, due_date=date(2025, 3, 15))
    set_credit_limit(app, Decimal("2000.00"), "USD", date(2025, 1, 1))
    pay(app, Decimal("10.00"), "USD", "W-1", date(2025, 3, 1))
    api = build_api(tmp_path, app)
    body = api.ok("/microsoft")
    assert body["next_cursor"] is None
    [row] = body["items"]
    assert (row["currency"], row["credit_limit"], row["credit_used"], row["credit_used_percent"],
            row["oldest_days_past_due"], row["partner_status"]) == (
        "USD", "2000.00", "1600.00", "80.00", 107, "suspendable",
    )  # fmt: skip
    assert api.ok("/microsoft", as_of="2024-12-31")["items"] == []  # nothing known yet
    past = api.ok("/microsoft", as_of="2025-01-05")["items"][0]  # the limit, no cost yet
    assert (past["credit_limit"], past["credit_used"], past["invoices"]) == ("2000.00", "0.00", [])
    assert api.get("/microsoft", role=None).status_code == 401
    text = api.get("/metrics", role=None).text
    assert 'ledger_microsoft_credit_used_percent{currency="USD"} 80.0' in text
    assert 'ledger_microsoft_oldest_days_past_due{currency="USD"} 107.0' in text
