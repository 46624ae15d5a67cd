"""Documents as a customer reads them (SPEC §14): the PDF's text, the statement's balance,
autoescaping and template overrides. The store is the demo's two months of business."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest

from ledger.api.history import stream_events
from ledger.app.views import compute_view
from ledger.config import ConfigError, Settings
from ledger.documents import render
from ledger.documents.model import (
    DocumentNotFound,
    invoice_document,
    invoice_ids,
    notice_document,
    notice_ids,
    statement_document,
)
from ledger.documents.profile import SAMPLE
from ledger.documents.render import render_html, render_pdf


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ledger.app.demo import run_demo
    from ledger.bootstrap import build_app, deadletter_store

    path = tmp_path_factory.mktemp("demo") / "ledger.db"
    settings = Settings(database_url=f"sqlite:///{path}", kafka_bootstrap=None)
    app = build_app(settings)
    run_demo(app, lambda _text: None, deadletter_store(settings))
    return app


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_invoice_pdf_shows_number_lines_total_and_due_date(demo_app):
    events = stream_events(demo_app, "tenant-001")
    invoice = invoice_document(events, invoice_ids(events)[0])
    assert invoice.lines, "the demo's invoice bills charges"
    text = pdf_text(render_pdf(invoice, SAMPLE))
    assert f"Invoice {invoice.invoice_id}" in text
    for line in invoice.lines:
        assert line.description in text
        assert f"USD {line.amount:,}" in text
    assert "Total USD 6,840.00" in text
    assert "Due date 15 Feb 2026" in text
    assert "Amount due by 15 Feb 2026" in text
    assert SAMPLE.bank.iban in text


def test_every_customers_statement_closes_on_the_balances_view(demo_app):
    end = date(2026, 3, 31)
    balances = {
        r["customer_id"]: r for r in compute_view(demo_app, "balances", end, historical=True)
    }
    assert len(balances) > 10
    for customer_id, row in balances.items():
        statement = statement_document(stream_events(demo_app, customer_id), date(2026, 2, 1), end)
        body = statement.to_json()
        assert body["closing_balance"] == row["balance"], customer_id
        assert body["aging"] == row["aging"]
        running = Decimal(body["opening_balance"])
        for line in body["lines"]:
            running += Decimal(line["debit"]) - Decimal(line["credit"])
            assert Decimal(line["balance"]) == running
        assert set(body) == {
            "customer_id", "name", "currency", "from", "to", "opening_balance", "lines",
            "closing_balance", "aging",
        }  # fmt: skip
    text = pdf_text(render_pdf(statement, SAMPLE))
    assert "Statement of account" in text and "Closing balance on 31 Mar 2026" in text


def test_notices_list_overdue_invoices_and_the_next_step(demo_app):
    events = stream_events(demo_app, "tenant-005")
    ids = notice_ids(events)
    assert ids
    notice = notice_document(events, ids[0], demo_app.policies)
    assert notice.action == "reminder" and notice.overdue
    text = pdf_text(render_pdf(notice, SAMPLE))
    assert "Payment reminder" in text
    assert notice.overdue[0].invoice_id in text
    assert "Next step: a final notice before suspension on 24 Mar 2026" in text
    suspended = [
        e["event_id"] for e in stream_events(demo_app, "tenant-001")
        if e["event_type"] == "SubscriptionSuspended"
    ]  # fmt: skip
    doc = notice_document(stream_events(demo_app, "tenant-001"), suspended[0], demo_app.policies)
    assert "has been suspended" in render_html(doc, SAMPLE)


def test_html_is_autoescaped_and_templates_are_overridable(demo_app, tmp_path: Path):
    events = stream_events(demo_app, "tenant-001")
    invoice = invoice_document(events, invoice_ids(events)[0])
    hostile = SAMPLE.model_copy(update={"name": "<script>alert(1)</script>"})
    html = render_html(invoice, hostile)
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    (tmp_path / "invoice.html").write_text("OVERRIDE {{ doc.invoice_id }} {{ partner.name }}")
    assert render_html(invoice, hostile, tmp_path) == (
        f"OVERRIDE {invoice.invoice_id} &lt;script&gt;alert(1)&lt;/script&gt;"
    )
    with pytest.raises(ConfigError, match="LEDGER_TEMPLATES_DIR"):
        render.environment(tmp_path / "missing")


def test_unknown_invoice_is_not_found(demo_app):
    with pytest.raises(DocumentNotFound, match="invoice_id"):
        invoice_document(stream_events(demo_app, "tenant-001"), "INV-nope")


def test_a_long_statement_runs_over_pages_with_every_line():
    from ledger.documents.model import Customer, Statement, StatementLine

    customer = Customer("c-1", "C Ltd", "EUR", "ap@c.example")
    lines = [
        StatementLine(
            "2026-01-01", "invoice", f"INV-{i:03d}", "x", Decimal(1), Decimal(0), Decimal(i + 1)
        )
        for i in range(120)
    ]
    doc = Statement(customer, "EUR", date(2026, 1, 1), date(2026, 3, 1), Decimal(0), lines,
                    Decimal(120), {"current": Decimal(0), "d1_30": Decimal(0)})  # fmt: skip
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(doc, SAMPLE)))
    assert len(reader.pages) >= 3
    text = pdf_text(render_pdf(doc, SAMPLE))
    assert all(f"INV-{i:03d}" in text for i in range(120))
    assert "EUR 120.00" in text
