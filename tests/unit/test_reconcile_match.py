"""Matching generated Partner Center files (thousands of lines, several customers and charge
types) with the ledger: exactly the deliberate differences are reported."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.reconcile import import_recon_file, ledger_charges, parse_recon_file, reconcile
from ledger.store.eventstore import eventsourcing_env
from tests.fixtures.recon_gen import Scenario, generate
from tests.helpers import msgs

RECORDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ledger_with(scenario: Scenario, url: str = "memory://") -> LedgerApplication:
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    messages = msgs(scenario.messages)
    for start in range(0, len(messages), 1000):
        result = app.handle_batch(messages[start : start + 1000])
        assert result.count("applied") == len(result.outcomes), [
            o.error for o in result.outcomes if o.error
        ][:3]
    return app


def check_report(doc: dict[str, object], scenario: Scenario) -> None:
    expected = scenario.expected
    assert list(doc) == [
        "invoice_number", "billing_period", "currency", "invoice_total", "matched",
        "missing_in_ledger", "missing_on_invoice", "amount_mismatches",
    ]  # fmt: skip
    assert (doc["invoice_number"], doc["billing_period"], doc["currency"]) == (
        scenario.invoice_number, scenario.period, scenario.currency,
    )  # fmt: skip
    assert doc["invoice_total"] == expected.invoice_total
    assert doc["matched"] == expected.matched
    assert [line["line"] for line in doc["missing_in_ledger"]] == expected.missing_in_ledger_lines  # type: ignore[attr-defined]
    assert doc["missing_on_invoice"] == expected.missing_on_invoice
    assert sorted(doc["amount_mismatches"], key=lambda m: m["charge_id"]) == (  # type: ignore[arg-type]
        expected.amount_mismatches
    )


@pytest.mark.parametrize(
    "options",
    [
        {"seed": 7},
        {"seed": 11, "bom": False, "crlf": False, "us_dates": False, "shuffle_columns": False},
        {"seed": 23, "customers": 40, "period": "2024-12", "currency": "EUR"},
    ],
)
def test_reports_exactly_the_deliberate_differences(options: dict[str, object]) -> None:
    scenario = generate(3000, **options)  # type: ignore[arg-type]
    app = ledger_with(scenario)
    report = reconcile(parse_recon_file(scenario.csv_bytes), ledger_charges(app.charge_events()))
    doc = report.to_json()
    check_report(doc, scenario)
    assert scenario.line_count == 3000 and doc["matched"] == 2998
    assert len(doc["missing_in_ledger"]) == 2 and len(doc["missing_on_invoice"]) == 1
    assert len(doc["amount_mismatches"]) == 2
    kinds = {r.line.ms_charge_type for r in report.results if r.line}
    assert {"cycleCharge", "new", "renew", "addQuantity", "removeQuantity", "cancelImmediate",
            "usage", "convert"} <= kinds  # fmt: skip


def test_a_clean_file_matches_every_line() -> None:
    scenario = generate(2000, 12, seed=3, deliberate=False)
    app = ledger_with(scenario)
    doc = reconcile(parse_recon_file(scenario.csv_bytes),
                    ledger_charges(app.charge_events())).to_json()  # fmt: skip
    assert (doc["matched"], doc["missing_in_ledger"], doc["missing_on_invoice"],
            doc["amount_mismatches"]) == (2000, [], [], [])  # fmt: skip


def test_missing_line_details_name_the_file_line() -> None:
    scenario = generate(500, 5, seed=5)
    app = ledger_with(scenario)
    doc = reconcile(parse_recon_file(scenario.csv_bytes),
                    ledger_charges(app.charge_events())).to_json()  # fmt: skip
    lines = scenario.csv_bytes.decode("utf-8-sig").split("\r\n")
    for missing in doc["missing_in_ledger"]:
        raw = lines[missing["line"] - 1]
        assert missing["customer_id"] in raw and missing["subscription_id"] in raw
        assert missing["subtotal"] in raw
        assert set(missing) == {
            "line", "customer_id", "subscription_id", "product_id", "sku_id", "charge_type",
            "charge_start", "charge_end", "subtotal",
        }  # fmt: skip


def test_reimport_records_nothing() -> None:
    scenario = generate(1000, 10, seed=9)
    app = ledger_with(scenario)
    first = import_recon_file(app, scenario.csv_bytes, payment_terms_days=60)
    head = app.head_position()
    again = import_recon_file(app, scenario.csv_bytes, payment_terms_days=60)
    assert (first.recorded, again.recorded) == (True, False)
    assert app.head_position() == head
    assert again.report.to_json() == first.report.to_json()
    assert str(first.due_date) == "2025-04-02"  # invoice 2025-02-01 + 60 days


def test_ten_thousand_lines_import_in_seconds(tmp_path: Path) -> None:
    scenario = generate(10_000, 200, seed=42)
    app = ledger_with(scenario, f"sqlite:///{tmp_path / 'ledger.db'}")
    started = time.perf_counter()
    result = import_recon_file(app, scenario.csv_bytes, payment_terms_days=60)
    took = time.perf_counter() - started
    check_report(result.report.to_json(), scenario)
    assert result.recorded
    started = time.perf_counter()
    assert not import_recon_file(app, scenario.csv_bytes, payment_terms_days=60).recorded
    again = time.perf_counter() - started
    print(f"\n10,000-line reconciliation file ({len(scenario.csv_bytes) / 1e6:.1f} MB, "
          f"{len(scenario.messages)} ledger messages, SQLite): imported in {took:.2f} s, "
          f"re-import (no-op) in {again:.2f} s")  # fmt: skip
