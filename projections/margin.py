"""The partner's margin (SPEC §10): revenue, cost and margin per customer, billing period and
currency.

Rows: `customer|<id>` (name, from CustomerRegistered / CustomerUpdated) and
`margin|<customer>|<YYYY-MM>|<CUR>` (from ChargePosted: `revenue` = sum of `amount`, `cost` =
sum of `cost x cost_fx_rate`, i.e. Microsoft's cost converted to the customer's currency at
each charge's own rate; exact, rounded half-even to the currency's minor unit only in the view).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ledger.domain.money import fmt, quantize
from ledger.domain.personal import ERASED
from projections.base import Event, Row, Rows, dec

CUSTOMER_EVENTS = frozenset(
    {"CustomerRegistered", "CustomerUpdated", "CustomerPersonalDataEncrypted"}
)
ERASURE = "CustomerPersonalDataErased"  # SPEC §13: the name reads "[erased]"
CENT = Decimal("0.01")


class MarginProjection:
    name = "margin"

    def keys(self, event: Event) -> list[str]:
        kind = event["event_type"]
        if kind == "ChargePosted":
            data = event["data"]
            return [f"margin|{event['customer_id']}|{data['billing_period']}|{data['currency']}"]
        if kind in CUSTOMER_EVENTS and event["data"].get("name") is not None:
            return [f"customer|{event['customer_id']}"]
        if kind == ERASURE:
            return [f"customer|{event['customer_id']}"]
        return []

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        data = event["data"]
        if key.startswith("customer|"):
            return {"name": ERASED if event["event_type"] == ERASURE else data["name"]}
        if row is None:
            _, customer_id, period, currency = key.split("|")
            row = {"customer_id": customer_id, "billing_period": period, "currency": currency,
                   "revenue": "0", "cost": "0"}  # fmt: skip
        cost = dec(data["cost"])
        rate = data.get("cost_fx_rate")
        if rate is not None:
            cost *= dec(rate)
        row["revenue"] = str(dec(row["revenue"]) + dec(data["amount"]))
        row["cost"] = str(dec(row["cost"]) + cost)
        return row


def margin_view(
    rows: Rows, period: str | None = None, customer_id: str | None = None
) -> list[dict[str, Any]]:
    """SPEC §10 `margin` rows, by customer, billing period and currency."""
    out = []
    for key, row in sorted(rows.items()):
        if not key.startswith("margin|"):
            continue
        if period is not None and row["billing_period"] != period:
            continue
        if customer_id is not None and row["customer_id"] != customer_id:
            continue
        currency = row["currency"]
        revenue = dec(row["revenue"])
        cost = quantize(dec(row["cost"]), currency)
        margin = revenue - cost
        customer = rows.get(f"customer|{row['customer_id']}") or {}
        out.append({
            "customer_id": row["customer_id"],
            "name": customer.get("name"),
            "billing_period": row["billing_period"],
            "currency": currency,
            "revenue": fmt(revenue, currency),
            "cost": fmt(cost, currency),
            "margin": fmt(margin, currency),
            "margin_percent": (
                str((margin / revenue * 100).quantize(CENT, rounding=ROUND_HALF_EVEN))
                if revenue else None
            ),
        })  # fmt: skip
    return out
