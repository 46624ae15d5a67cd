"""An invoice's charge lines from the charges an account keeps (ledger.domain.account_state
UnbilledCharge: the event's amount and cost text, read as Decimals): each line is the amount
in the customer's minor unit (JPY none) and the cost in Microsoft's currency with
`cost_currency` when it is not the customer's; a credit stays negative. A void gives the
same lines back (InvoiceVoided) and the reissue lists them again, unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ledger.app.application import LedgerApplication
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import charge, customer_registered, msg

RECORDED = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _charges(app: LedgerApplication, customer_id: str, event_type: str) -> list[Any]:
    return [e.data["charges"] for e in app.stream(customer_id) if type(e).__name__ == event_type]


def test_invoice_lines_in_each_currency_survive_a_void_and_a_reissue() -> None:
    app = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    messages = [
        customer_registered("usd1", tax_rate="20"),
        customer_registered("eur1", currency="EUR"),
        customer_registered("jpy1", currency="JPY"),
        charge("usd1", "U1", amount="100.5", cost="80.1"),
        charge("usd1", "U2", amount="-12.30", cost="-9.87", charge_type="customer_credit"),
        charge("eur1", "E1", amount="92.00", currency="EUR", cost="100", cost_currency="USD",
               cost_fx_rate="0.92"),
        charge("jpy1", "J1", amount="1500", currency="JPY", cost="9.87", cost_currency="USD",
               cost_fx_rate="151.2"),
        charge("jpy1", "J2", amount="-300", currency="JPY", cost="-1.98", cost_currency="USD",
               cost_fx_rate="151.2", charge_type="customer_credit"),
        charge("jpy1", "J3", amount="77", currency="JPY", cost="60"),
    ]  # fmt: skip
    outcomes = app.handle_batch([msg(m) for m in messages]).outcomes
    assert [o.status for o in outcomes] == ["applied"] * len(messages)
    assert len(app.run_invoices("2025-01", date(2025, 2, 1))) == 3

    expected = {
        "usd1": [{"charge_id": "U1", "amount": "100.50", "cost": "80.10",
                  "billing_period": "2025-01"},
                 {"charge_id": "U2", "amount": "-12.30", "cost": "-9.87",
                  "billing_period": "2025-01"}],
        "eur1": [{"charge_id": "E1", "amount": "92.00", "cost": "100.00",
                  "billing_period": "2025-01", "cost_currency": "USD"}],
        "jpy1": [{"charge_id": "J1", "amount": "1500", "cost": "9.87",
                  "billing_period": "2025-01", "cost_currency": "USD"},
                 {"charge_id": "J2", "amount": "-300", "cost": "-1.98",
                  "billing_period": "2025-01", "cost_currency": "USD"},
                 {"charge_id": "J3", "amount": "77", "cost": "60",
                  "billing_period": "2025-01"}],
    }  # fmt: skip
    for customer_id, lines in expected.items():
        assert _charges(app, customer_id, "InvoiceIssued") == [lines]
        app.void_invoice(f"INV-{customer_id}-2025-01", "wrong prices")
    assert len(app.run_invoices("2025-01", date(2025, 2, 1))) == 3
    for customer_id, lines in expected.items():
        assert _charges(app, customer_id, "InvoiceVoided") == [lines]
        assert _charges(app, customer_id, "InvoiceIssued") == [lines, lines]
    usd = [e.data for e in app.stream("usd1") if type(e).__name__ == "InvoiceIssued"]
    assert [(d["subtotal"], d["tax"], d["total"]) for d in usd] == [
        ("88.20", "17.64", "105.84")
    ] * 2
