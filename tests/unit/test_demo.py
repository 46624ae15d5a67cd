"""`ledger demo` runs the whole embedded pipeline and shows what a new user should see."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

LEDGER = str(Path(sys.executable).with_name("ledger"))


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    full_env.update(env, COLUMNS="200")
    return subprocess.run(
        [LEDGER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_demo_runs_the_business_and_prints_every_view(tmp_path: Path) -> None:
    done = run(["demo"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for title in ("Balances", "Delinquency", "Remittance due to Microsoft", "Support tickets"):
        assert title in out
    assert "hash chains intact" in out
    # SPEC §13: one customer is forgotten; the chains still verify (above).
    assert "erasure request: forgot tenant-004" in out
    assert "[erased]" in out and "Adventure Works" not in out
    # Styles are applied, never printed: no rich markup left in the tables.
    assert "[/]" not in out and "[bold" not in out
    assert "warning_85" in out  # the Microsoft credit status, styled
    assert "1 amount mismatch" in out and "1 charge not billed" in out
    # February is billed from Microsoft's file with the price book, and its margin shown.
    assert "billed February from Microsoft's file G012399999 with the price book: 75 charges" in out
    assert "February's margin, billed from Microsoft's file" in out
    assert (tmp_path / "ledger-demo-partner-center-G012399999.csv").is_file()
    assert (tmp_path / "ledger-demo-prices.toml").is_file()
    assert "export LEDGER_DATABASE_URL=sqlite:///ledger-demo.db" in out
    assert (tmp_path / "ledger-demo-microsoft-2026-01.csv").is_file()


def test_demo_bills_february_from_a_partner_center_file(tmp_path: Path) -> None:
    assert run(["demo"], tmp_path).returncode == 0
    url = "sqlite:///ledger-demo.db"
    margin = json.loads(run(["show", "margin", "--json", "--period", "2026-02"], tmp_path,
                            LEDGER_DATABASE_URL=url).stdout)  # fmt: skip
    assert len(margin) == 36
    assert {r["currency"] for r in margin} == {"USD", "EUR"}  # tenant-005 billed in EUR
    charges = {}
    with sqlite3.connect(tmp_path / "ledger-demo.db") as db:
        for (state,) in db.execute("SELECT state FROM stored_events WHERE topic = "
                                   "'ledger.domain.events:ChargePosted'"):  # fmt: skip
            data = json.loads(state)["data"]
            if data["billing_period"] == "2026-02":
                charges[data["charge_id"]] = data
    kinds = {c["ms_charge_type"] for c in charges.values()}
    assert kinds == {"cycleCharge", "usage", "removeQuantity"}
    [credit] = [c for c in charges.values() if c["charge_type"] == "remove_quantity"]
    assert Decimal(credit["amount"]) < 0 and Decimal(credit["cost"]) < 0
    euro = [c for c in charges.values() if c["currency"] == "EUR"]
    assert euro and all((c["cost_currency"], c["cost_fx_rate"]) == ("USD", "0.92") for c in euro)
    # The file reconciles line for line, and billing it again posts nothing.
    recon = json.loads(run(["reconcile", "ledger-demo-partner-center-G012399999.csv", "--json"],
                           tmp_path, LEDGER_DATABASE_URL=url).stdout)  # fmt: skip
    assert recon["matched"] == 75 and recon["amount_mismatches"] == []
    again = json.loads(run(["bill", "partner-center", "ledger-demo-partner-center-G012399999.csv",
                            "--price-book", "ledger-demo-prices.toml", "--json"], tmp_path,
                           LEDGER_DATABASE_URL=url).stdout)  # fmt: skip
    assert (again["billed"], again["duplicates"]) == (0, 75)


def test_demo_suspends_and_reinstates_and_rerun_starts_clean(tmp_path: Path) -> None:
    url = "sqlite:///ledger-demo.db"
    for _ in range(2):  # a second run starts clean: same events, not twice as many
        assert run(["demo"], tmp_path).returncode == 0
        verify = run(["audit", "verify"], tmp_path, LEDGER_DATABASE_URL=url)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        counted = verify.stdout
    assert counted == verify.stdout
    delinquency = run(
        ["show", "delinquency", "--json", "--as-of", "2026-04-10"], tmp_path,
        LEDGER_DATABASE_URL=url,
    )  # fmt: skip
    rows = json.loads(delinquency.stdout)
    assert any(r["suspended_since"] for r in rows), "some customer stays suspended"
    balances = json.loads(
        run(["show", "balances", "--json", "--as-of", "2026-04-10"], tmp_path,
            LEDGER_DATABASE_URL=url).stdout
    )  # fmt: skip
    assert len(balances) == 36
    statuses = {b["status"] for b in balances}
    assert statuses == {"active", "suspended"}
    trial = json.loads(
        run(["show", "trial-balance", "--json"], tmp_path, LEDGER_DATABASE_URL=url).stdout
    )
    assert sum(Decimal(r["balance"]) for r in trial) == 0
    with sqlite3.connect(tmp_path / "ledger-demo.db") as db:
        topics = dict(db.execute("SELECT topic, COUNT(*) FROM stored_events GROUP BY topic"))
    assert topics["ledger.domain.events:SubscriptionSuspended"] > 0
    assert topics["ledger.domain.events:SubscriptionReinstated"] > 0
    assert topics["ledger.domain.events:PaymentReversed"] > 0
    assert topics["ledger.domain.events:SupportTicketEscalated"] > 0
