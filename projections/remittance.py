"""What the partner owes Microsoft per billing period and currency, and how much of that
cost its customers have already paid it (collected = cost of invoiced charges times the paid
fraction of their invoice)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt, quantize
from projections.base import Event, Row, Rows, dec

ZERO = Decimal(0)


class RemittanceProjection:
    name = "remittance"

    def keys(self, event: Event) -> list[str]:
        kind, data = event["event_type"], event["data"]
        if kind == "ChargePosted":
            return [f"period|{data['billing_period']}|{data['currency']}"]
        if kind == "InvoiceIssued" or (
            kind in ("PaymentApplied", "PaymentUnapplied")
            and not data["invoice_id"].startswith("DM-")
        ):
            return [f"invoice|{event['customer_id']}|{data['invoice_id']}"]
        return []

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        kind, data = event["event_type"], event["data"]
        if key.startswith("period|"):
            _, period, currency = key.split("|")
            row = row or {"billing_period": period, "currency": currency, "cost_accrued": "0"}
            row["cost_accrued"] = str(dec(row["cost_accrued"]) + dec(data["cost"]))
            return row
        row = row or {"currency": data.get("currency"), "total": "0", "settled": "0", "costs": {}}
        if kind == "InvoiceIssued":
            row["total"] = data["total"]
            for charge in data["charges"]:
                period = charge["billing_period"]
                row["costs"][period] = str(dec(row["costs"].get(period)) + dec(charge["cost"]))
        else:
            sign = 1 if kind == "PaymentApplied" else -1
            row["settled"] = str(dec(row["settled"]) + sign * dec(data["amount"]))
        return row


def remittance_view(rows: Rows, period: str | None = None) -> list[dict[str, Any]]:
    collected: dict[tuple[str, str], Decimal] = {}
    for key, row in rows.items():
        if not key.startswith("invoice|") or dec(row["total"]) <= 0:
            continue
        fraction = dec(row["settled"]) / dec(row["total"])
        for cost_period, cost in row["costs"].items():
            slot = (cost_period, row["currency"])
            collected[slot] = collected.get(slot, ZERO) + dec(cost) * fraction
    out = []
    for key, row in sorted(rows.items()):
        if not key.startswith("period|") or (period and row["billing_period"] != period):
            continue
        currency = row["currency"]
        accrued = dec(row["cost_accrued"])
        invoiced = row.get("microsoft_invoiced")
        paid = dec(row.get("paid_to_microsoft"))
        due = (dec(invoiced) if invoiced is not None else accrued) - paid
        got = quantize(collected.get((row["billing_period"], currency), ZERO), currency)
        out.append(
            {
                "billing_period": row["billing_period"],
                "currency": currency,
                "cost_accrued": fmt(accrued, currency),
                "microsoft_invoiced": fmt(dec(invoiced), currency) if invoiced else None,
                "paid_to_microsoft": fmt(paid, currency),
                "due_to_microsoft": fmt(due, currency),
                "due_date": row.get("due_date"),
                "collected_from_customers": fmt(got, currency),
                "exposure": fmt(max(due - got, ZERO), currency),
            }
        )
    return out
