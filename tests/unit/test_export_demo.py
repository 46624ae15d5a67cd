"""The exports on the demo's store (SPEC §12; `ledger demo`: two months of 36 customers,
payments of every kind, a customer billed in EUR, Microsoft paid): Xero's rows add up to every
invoice of the period, the invoices view agrees with the balances, and the whole journal
export sums to the trial balance."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.app.exports.xero import XERO_COLUMNS

LEDGER = str(Path(sys.executable).with_name("ledger"))
D = Decimal


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL="sqlite:///ledger-demo.db", COLUMNS="200")
    done = subprocess.run([LEDGER, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    run(["demo"], folder)
    return folder


@pytest.mark.parametrize("period", ["2026-01", "2026-02"])
def test_xero_rows_add_up_to_every_invoice_of_the_period(demo: Path, period: str) -> None:
    view = rows(run(["export", "invoices", "--period", period, "--format", "csv"], demo).stdout)
    done = run(["export", "invoices", "--period", period], demo)
    xero = rows(done.stdout)
    assert xero and list(xero[0]) == list(XERO_COLUMNS)
    by_invoice: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in xero:
        by_invoice[row["InvoiceNumber"]].append(row)
    left_out = {line.split()[2].rstrip(":") for line in done.stderr.splitlines()
                if line.startswith("left out ")}  # fmt: skip
    assert {r["invoice_id"] for r in view} == set(by_invoice) | left_out
    assert all(
        D(r["total"]) < 0 or r["status"] == "void" for r in view if r["invoice_id"] in left_out
    )
    names = {b["customer_id"]: b["name"] for b in json.loads(
        run(["show", "balances", "--json"], demo).stdout)}  # fmt: skip
    for invoice in view:
        lines = by_invoice.get(invoice["invoice_id"], [])
        if not lines:
            continue
        # Lines are tax exclusive; the invoice's tax is spread over them in TaxAmount.
        computed = sum(D(r["Quantity"]) * D(r["UnitAmount"]) + D(r["TaxAmount"]) for r in lines)
        assert computed == D(invoice["total"]) == D(lines[0]["Total"]), invoice["invoice_id"]
        assert {(r["ContactName"], r["Currency"], r["Reference"]) for r in lines} == {
            (names[invoice["customer_id"]], invoice["currency"], invoice["customer_id"])
        }
    assert {r["Currency"] for r in xero} == {"USD", "EUR"}  # tenant-005 is billed in EUR
    assert f"exported {len(by_invoice)} invoices of {period} for Xero ({len(xero)} lines)" in (
        done.stderr
    )


def test_the_invoices_view_agrees_with_the_balances(demo: Path) -> None:
    invoices = []
    for period in ("2026-01", "2026-02", "2026-03", "2026-04"):  # debit memos: by their date
        done = run(["export", "invoices", "--period", period, "--format", "csv"], demo)
        invoices += rows(done.stdout)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    outstanding: dict[str, Decimal] = defaultdict(Decimal)
    for invoice in invoices:
        void = invoice["status"] == "void"  # kept with its figures, nothing billed or open
        if invoice["billing_period"] and not void:  # `billed` counts invoices, not memos
            billed[invoice["customer_id"]] += D(invoice["total"])
        outstanding[invoice["customer_id"]] += D(invoice["open"])
        settled = sum(D(invoice[k]) for k in ("paid", "credited", "written_off", "open"))
        assert settled == (D(0) if void else max(D(invoice["total"]), D(0))), invoice
    for b in json.loads(run(["show", "balances", "--json"], demo).stdout):
        assert D(b["billed"]) == billed[b["customer_id"]], b["customer_id"]
        assert D(b["outstanding"]) == outstanding[b["customer_id"]], b["customer_id"]
    assert {i["status"] for i in invoices} >= {"paid", "open", "void", "written_off"}


def test_the_whole_journal_export_sums_to_the_trial_balance(demo: Path) -> None:
    export = rows(run(["export", "journal", "--from", "2026-01-01", "--to", "2026-12-31"],
                      demo).stdout)  # fmt: skip
    sums: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [D(0), D(0)])
    for row in export:
        sums[(row["account"], row["currency"])][0] += D(row["debit"])
        sums[(row["account"], row["currency"])][1] += D(row["credit"])
    trial = json.loads(run(["show", "trial-balance", "--json"], demo).stdout)
    assert {(r["account"], r["currency"]): [D(r["debit"]), D(r["credit"])] for r in trial} == (
        dict(sums)
    )
