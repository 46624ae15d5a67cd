"""The `margin` view (SPEC §10): revenue, cost converted at each charge's rate, margin and
margin % per customer, billing period and currency — in process, through `ledger show margin`
and `GET /margin`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from ledger.application import LedgerApplication
from ledger.storage import eventsourcing_env
from ledger.views import compute_view
from tests import helpers as h
from tests.unit.test_api import build_api

RECORDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DAY = date(2025, 3, 1)


def ledger() -> LedgerApplication:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    raws = [
        h.customer_registered("us-1", name="US One"),
        h.customer_registered("eu-1", name="EU One", currency="EUR"),
        h.customer_registered("zero", name="Zero Rev"),
        h.charge("us-1", "A", "115.00", cost="100.00"),
        h.charge("us-1", "B", "-14.19", cost="-12.34", charge_type="remove_quantity",
                 quantity="-1"),
        h.charge("us-1", "C", "50.00", cost="40.00", billing_period="2025-02"),
        # 100 USD at 0.92 and 33.33 USD at 0.9234: 92 + 30.777…, the sum rounded once
        h.charge("eu-1", "E1", "101.20", currency="EUR", cost="100.00", cost_currency="USD",
                 cost_fx_rate="0.92"),
        h.charge("eu-1", "E2", "35.00", currency="EUR", cost="33.33", cost_currency="USD",
                 cost_fx_rate="0.9234"),
        h.charge("zero", "Z", "0.00", cost="0.00", charge_type="support"),
        h.customer_updated("us-1", name="US One Renamed"),
    ]  # fmt: skip
    outcomes = app.handle_batch(h.msgs(raws)).outcomes
    assert all(o.status == "applied" for o in outcomes), [o.error for o in outcomes]
    return app


def test_rows_per_customer_period_and_currency() -> None:
    rows = compute_view(ledger(), "margin", DAY)
    assert rows == [
        {"customer_id": "eu-1", "name": "EU One", "billing_period": "2025-01", "currency": "EUR",
         "revenue": "136.20", "cost": "122.78", "margin": "13.42", "margin_percent": "9.85"},
        {"customer_id": "us-1", "name": "US One Renamed", "billing_period": "2025-01",
         "currency": "USD", "revenue": "100.81", "cost": "87.66", "margin": "13.15",
         "margin_percent": "13.04"},
        {"customer_id": "us-1", "name": "US One Renamed", "billing_period": "2025-02",
         "currency": "USD", "revenue": "50.00", "cost": "40.00", "margin": "10.00",
         "margin_percent": "20.00"},
        {"customer_id": "zero", "name": "Zero Rev", "billing_period": "2025-01",
         "currency": "USD", "revenue": "0.00", "cost": "0.00", "margin": "0.00",
         "margin_percent": None},
    ]  # fmt: skip


def test_filters_by_period_and_customer() -> None:
    app = ledger()
    assert [r["customer_id"] for r in compute_view(app, "margin", DAY, period="2025-02")] == [
        "us-1"
    ]
    only = compute_view(app, "margin", DAY, customer_id="us-1", period="2025-01")
    assert [(r["customer_id"], r["billing_period"]) for r in only] == [("us-1", "2025-01")]


def test_get_margin(tmp_path: Path) -> None:
    api = build_api(tmp_path, ledger())
    body = api.ok("/margin", role="reader")
    assert [r["customer_id"] for r in body["items"]] == ["eu-1", "us-1", "us-1", "zero"]
    page = api.ok("/margin", period="2025-01", customer_id="eu-1")
    assert page["items"] == compute_view(ledger(), "margin", DAY, customer_id="eu-1")
    first, pages = api.all_pages("/margin", limit=1)
    assert len(first) == 4 and pages == 4
    assert api.get("/margin", period="2025-1").status_code == 422
    assert api.get("/margin", role=None).status_code == 401


def test_ledger_show_margin(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'l.db'}"
    messages = [
        h.customer_registered("eu-1", name="EU One", currency="EUR"),
        h.charge("eu-1", "E1", "101.20", currency="EUR", cost="100.00", cost_currency="USD",
                 cost_fx_rate="0.92"),
    ]  # fmt: skip
    path = tmp_path / "in.jsonl"
    path.write_text(h.jsonl(messages))
    h.run_cli(db, "ingest", str(path))
    out = h.run_cli(db, "show", "margin", "--json", "--period", "2025-01")
    assert json.loads(out.stdout) == [
        {"customer_id": "eu-1", "name": "EU One", "billing_period": "2025-01", "currency": "EUR",
         "revenue": "101.20", "cost": "92.00", "margin": "9.20", "margin_percent": "9.09"},
    ]  # fmt: skip
    table = h.run_cli(db, "show", "margin").stdout
    assert "eu-1" in table and "9.09" in table
