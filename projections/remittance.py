"""What the partner owes Microsoft per billing period and currency, and how much of that
cost its customers have already paid it (collected = cost of invoiced charges times the
cash-paid fraction of their invoice: payments net of reversals, never credit notes).

Rows: `period|<YYYY-MM>|<CUR>` (accrued cost from ChargePosted; Microsoft's invoices and the
partner's payments from the `microsoft:<YYYY-MM>:<CUR>` streams) and
`invoice|<customer>|<invoice id>` (the customer invoices that carry those costs).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ledger.domain.account import CASH_SOURCES
from ledger.domain.microsoft import cost_currency
from ledger.domain.money import fmt, quantize
from projections.base import Event, Row, Rows, dec

ZERO = Decimal(0)
MICROSOFT_EVENTS = ("MicrosoftRemittanceOpened", "MicrosoftInvoiceRecorded",
                    "MicrosoftPaymentRecorded")  # fmt: skip
DUE_SOON_DAYS = 7


def _period_row(period: str, currency: str) -> Row:
    return {
        "billing_period": period, "currency": currency, "cost_accrued": "0",
        "microsoft_invoices": {}, "paid_to_microsoft": "0", "payments": {},
    }  # fmt: skip


class RemittanceProjection:
    name = "remittance"

    def keys(self, event: Event) -> list[str]:
        kind, data = event["event_type"], event["data"]
        if kind == "ChargePosted":  # keyed by Microsoft's billing currency of the cost
            return [f"period|{data['billing_period']}|{cost_currency(data)}"]
        if kind in MICROSOFT_EVENTS:
            return [f"period|{data['billing_period']}|{data['currency']}"]
        if kind == "MicrosoftPaymentMade":  # a payment applied to invoices of these periods
            return sorted({f"period|{a['billing_period']}|{data['currency']}"
                           for a in data["allocations"]})  # fmt: skip
        if kind == "MicrosoftPaymentAllocated":
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
            row = row or _period_row(period, currency)
            if kind == "ChargePosted":
                row["cost_accrued"] = str(dec(row["cost_accrued"]) + dec(data["cost"]))
            elif kind == "MicrosoftInvoiceRecorded":
                row["microsoft_invoices"][data["invoice_number"]] = {
                    "amount": data["amount"], "due_date": data["due_date"],
                }  # fmt: skip
            elif kind == "MicrosoftPaymentRecorded":
                row["payments"][data["reference"]] = data["amount"]
                row["paid_to_microsoft"] = str(dec(row["paid_to_microsoft"]) + dec(data["amount"]))
            elif kind in ("MicrosoftPaymentMade", "MicrosoftPaymentAllocated"):
                items = data["allocations"] if kind == "MicrosoftPaymentMade" else [data]
                paid = sum((dec(a["amount"]) for a in items if a["billing_period"] == period),
                           ZERO)  # fmt: skip
                row["paid_to_microsoft"] = str(dec(row["paid_to_microsoft"]) + paid)
            return row
        row = row or {
            "currency": data.get("currency"), "total": "0", "settled": "0", "paid": "0",
            "costs": {},
        }  # fmt: skip
        if kind == "InvoiceIssued":
            row["total"] = data["total"]
            for charge in data["charges"]:
                period = charge["billing_period"]
                other = charge.get("cost_currency")
                if other and other != row["currency"]:
                    # Cost owed to Microsoft in another currency (SPEC §10): collected there.
                    slot = f"{period}|{other}"
                    xcosts = row.setdefault("xcosts", {})
                    xcosts[slot] = str(dec(xcosts.get(slot)) + dec(charge["cost"]))
                    continue
                row["costs"][period] = str(dec(row["costs"].get(period)) + dec(charge["cost"]))
        else:
            amount = dec(data["amount"]) * (1 if kind == "PaymentApplied" else -1)
            row["settled"] = str(dec(row["settled"]) + amount)
            if data.get("source_type") in CASH_SOURCES:
                # Only cash is collected (SPEC §6): credit notes and credit invoices settle
                # the invoice without a cent reaching the partner.
                row["paid"] = str(dec(row.get("paid")) + amount)
        return row


SHARE_DECIMALS = 4  # an invoice's collected cost share is rounded to 1/10,000 of the unit


def collected_shares(row: Row) -> list[tuple[str, str, Decimal]]:
    """What of its cost one customer invoice row (`invoice|...`) has collected: per billing
    period and cost currency, the cost times its cash-paid fraction (paid / total), rounded
    half-even to 1/10,000 of the unit, so that the remittance view's sums are exact sums of
    these shares, in SQL (projections/summaries.py) as in Python. A credit invoice (total
    <= 0) collects nothing."""
    total = dec(row["total"])
    if total <= 0:
        return []
    # Rows stored before `paid` was kept count as unpaid (rebuild the projection).
    fraction = dec(row.get("paid")) / total
    step = Decimal(1).scaleb(-SHARE_DECIMALS)
    costs = [(period, row["currency"], cost) for period, cost in row["costs"].items()]
    costs += [(*slot.split("|"), cost) for slot, cost in row.get("xcosts", {}).items()]
    return [
        (period, currency, (dec(cost) * fraction).quantize(step, rounding=ROUND_HALF_EVEN))
        for period, currency, cost in costs
    ]


def collected_by_period(rows: Rows) -> dict[tuple[str, str], Decimal]:
    """The collected shares of the invoice rows summed per (billing period, currency)."""
    collected: dict[tuple[str, str], Decimal] = {}
    for key, row in rows.items():
        if key.startswith("invoice|"):
            for period, currency, share in collected_shares(row):
                collected[(period, currency)] = collected.get((period, currency), ZERO) + share
    return collected


def remittance_view(
    rows: Rows,
    period: str | None = None,
    collected: dict[tuple[str, str], Decimal] | None = None,
) -> list[dict[str, Any]]:
    """The SPEC §6 `remittance` rows, one per billing period and currency, from the
    `period|` rows; `collected`: the invoice rows' shares already summed per (period,
    currency) (the summary tables), else summed here from the `invoice|` rows."""
    if collected is None:
        collected = collected_by_period(rows)
    out = []
    for key, row in sorted(rows.items()):
        if not key.startswith("period|") or (period and row["billing_period"] != period):
            continue
        currency = row["currency"]
        accrued = dec(row["cost_accrued"])
        invoices = row.get("microsoft_invoices") or {}
        invoiced = sum((dec(i["amount"]) for i in invoices.values()), ZERO) if invoices else None
        paid = dec(row.get("paid_to_microsoft"))
        due = (invoiced if invoiced is not None else accrued) - paid
        got = quantize(collected.get((row["billing_period"], currency), ZERO), currency)
        out.append(
            {
                "billing_period": row["billing_period"],
                "currency": currency,
                "cost_accrued": fmt(accrued, currency),
                "microsoft_invoiced": fmt(invoiced, currency) if invoiced is not None else None,
                "paid_to_microsoft": fmt(paid, currency),
                "due_to_microsoft": fmt(due, currency),
                # Several invoices for one period: the earliest due date is the one to meet.
                "due_date": min(i["due_date"] for i in invoices.values()) if invoices else None,
                "collected_from_customers": fmt(got, currency),
                "exposure": fmt(max(due - got, ZERO), currency),
            }
        )
    return out


def payment_status(row: dict[str, Any], as_of: date) -> str:
    """How urgent paying Microsoft is for one view row on `as_of` (for tables, not JSON):
    `overdue Nd`, `due in Nd` (within 7 days), `open`, `paid`, or `accruing` (no invoice)."""
    due = dec(row["due_to_microsoft"])
    if row["due_date"] is None:
        return "accruing"
    if due <= 0:
        return "paid"
    days = (date.fromisoformat(row["due_date"]) - as_of).days
    if days < 0:
        return f"OVERDUE {-days}d"
    if days <= DUE_SOON_DAYS:
        return f"due in {days}d"
    return "open"
