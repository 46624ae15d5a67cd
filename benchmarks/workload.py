"""A deterministic, realistic ingest workload (SPEC §3 messages) for the benchmarks.

`registrations(customers)` registers every customer; `activity(n, customers, seed)` is the
day-to-day traffic of a partner: mostly charges, then payments, support tickets (opened,
worked on, escalated, resolved: all on `billing.support`, keyed by customer, so their order
holds), credit notes and customer updates. Every message is valid and is applied once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

PRODUCTS = (
    ("CFQ7TTC0LH18", "0001", "Microsoft 365 Business Basic", "6.00"),
    ("CFQ7TTC0LDPB", "0001", "Microsoft 365 Business Standard", "12.50"),
    ("CFQ7TTC0LFLZ", "0002", "Microsoft 365 E3", "36.00"),
    ("DZH318Z0BQ3Q", "0007", "Azure plan usage", "1.00"),
)
TIME = "{}-{:02d}T{:02d}:{:02d}:{:02d}Z"


@dataclass(frozen=True, slots=True)
class Msg:
    topic: str  # logical topic: customers, charges, payments or support
    key: str
    value: bytes


def customer_id(i: int) -> str:
    return f"cust-{i:06d}"


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def registrations(customers: int, *, offset: int = 0) -> list[Msg]:
    out = []
    for i in range(offset, offset + customers):
        cid = customer_id(i)
        out.append(Msg("customers", cid, _json({
            "message_id": f"reg-{cid}", "type": "customer_registered", "customer_id": cid,
            "occurred_at": "2024-12-01T08:00:00Z", "name": f"Customer {i} Ltd",
            "currency": "USD", "payment_terms_days": 30, "collections_policy": "standard",
            "email": f"ap@c{i}.example.com",
        })))  # fmt: skip
    return out


class Activity:
    """Generates the traffic; `tag` keeps the ids of two runs over the same customers apart."""

    def __init__(
        self, customers: int, seed: int = 7, tag: str = "a", period: str = "2025-03"
    ) -> None:
        self.customers = customers
        self.rng = random.Random(seed)
        self.tag = tag
        self.period = period  # billing period of the charges (YYYY-MM); dates follow it
        self.seq = 0
        self.open_tickets: dict[str, list[str]] = {}

    def __iter__(self) -> Iterator[Msg]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[Msg]:
        return [self.next() for _ in range(n)]

    def next(self) -> Msg:
        rng = self.rng
        self.seq += 1
        n = self.seq
        cid = customer_id(rng.randrange(self.customers))
        at = TIME.format(self.period, 1 + n % 28, n % 24, n % 60, (n // 60) % 60)
        envelope = {"customer_id": cid, "occurred_at": at}
        roll = rng.random()
        mid = f"{self.tag}{n}"
        if roll < 0.70:
            product, sku, description, price = PRODUCTS[n % len(PRODUCTS)]
            quantity = 1 + n % 25
            amount = f"{float(price) * quantity:.2f}"
            return Msg("charges", cid, _json({
                "message_id": f"chg-{mid}", "type": "charge", **envelope,
                "charge_id": f"CH-{mid}", "subscription_id": f"sub-{cid}-{n % 3}",
                "product_id": product, "sku_id": sku, "description": description,
                "charge_type": "cycle", "quantity": str(quantity), "unit_price": price,
                "amount": amount, "currency": "USD", "cost": f"{float(amount) * 0.8:.2f}",
                "billing_period": self.period, "charge_start": f"{self.period}-01",
                "charge_end": f"{self.period}-28", "ms_invoice_number": "G012345678",
            }))  # fmt: skip
        if roll < 0.82:
            return Msg("payments", cid, _json({
                "message_id": f"pay-{mid}", "type": "payment", **envelope,
                "payment_id": f"PAY-{mid}", "amount": f"{50 + n % 400}.00", "currency": "USD",
                "method": "bank_transfer", "reference": f"WIRE {mid}",
            }))  # fmt: skip
        if roll < 0.84:
            return Msg("payments", cid, _json({
                "message_id": f"crn-{mid}", "type": "credit_note", **envelope,
                "credit_id": f"CN-{mid}", "amount": "5.00", "currency": "USD",
                "reason": "goodwill",
            }))  # fmt: skip
        if roll < 0.85:
            return Msg("customers", cid, _json({
                "message_id": f"upd-{mid}", "type": "customer_updated", **envelope,
                "email": f"billing{n}@example.com",
            }))  # fmt: skip
        return self._support(cid, mid, envelope)

    def _support(self, cid: str, mid: str, envelope: dict[str, str]) -> Msg:
        tickets = self.open_tickets.setdefault(cid, [])
        roll = self.rng.random()
        if not tickets or roll < 0.35:
            ticket = f"T-{mid}"
            tickets.append(ticket)
            return Msg("support", cid, _json({
                "message_id": f"tko-{mid}", "type": "support_ticket_opened", **envelope,
                "ticket_id": ticket, "channel": "email", "category": "billing",
                "severity": "b", "subject": f"Question about the {self.period} invoice",
            }))  # fmt: skip
        ticket = tickets[0]
        if roll < 0.75:
            return Msg("support", cid, _json({
                "message_id": f"tki-{mid}", "type": "support_interaction", **envelope,
                "ticket_id": ticket, "minutes": 15, "note": "called back",
                "billable": roll < 0.5,
            }))  # fmt: skip
        if roll < 0.82:
            return Msg("support", cid, _json({
                "message_id": f"tke-{mid}", "type": "support_escalated", **envelope,
                "ticket_id": ticket, "vehicle": "microsoft_commercial",
                "microsoft_case_id": f"25{mid}",
            }))  # fmt: skip
        tickets.pop(0)
        return Msg("support", cid, _json({
            "message_id": f"tkr-{mid}", "type": "support_ticket_resolved", **envelope,
            "ticket_id": ticket, "resolution": "explained the proration",
        }))  # fmt: skip
