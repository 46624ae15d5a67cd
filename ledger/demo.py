"""A realistic two months of a CSP partner's business, generated deterministically and run
through the real pipeline: validation, idempotent ingest, invoice runs, payments (on time,
late, partial, bounced), collections that suspend and reinstate, support with escalations."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ledger.application import LedgerApplication
from ledger.deadletters import DeadLetterStore
from ledger.domain.money import quantize
from ledger.ingest import IngestCounts, RawRecord, process_records
from ledger.reconcile import import_recon_file

PRODUCTS = [
    # (product, sku, description, unit price per month, Microsoft cost share)
    ("CFQ7TTC0LFLX", "0001", "Microsoft 365 Business Premium", Decimal("22.00"), Decimal("0.85")),
    ("CFQ7TTC0LH18", "0002", "Microsoft 365 E3", Decimal("36.00"), Decimal("0.85")),
    ("CFQ7TTC0LH0R", "0004", "Microsoft 365 E5", Decimal("57.00"), Decimal("0.85")),
    ("CFQ7TTC0HH0Q", "0003", "Dynamics 365 Sales Enterprise", Decimal("95.00"), Decimal("0.88")),
    ("DZH318Z0BPS6", "0001", "Azure plan (usage)", Decimal("1.00"), Decimal("0.92")),
]
COMPANIES = [
    "Contoso", "Fabrikam", "Northwind Traders", "Adventure Works", "Tailspin Toys",
    "Wide World Importers", "Litware", "Proseware", "Coho Winery", "Alpine Ski House",
    "Woodgrove Bank", "Fourth Coffee", "Lamna Healthcare", "Margie's Travel", "Relecloud",
    "Trey Research", "VanArsdel", "Wingtip Toys", "Blue Yonder Airlines", "City Power & Light",
    "Consolidated Messenger", "Graphic Design Institute", "Humongous Insurance",
    "Lucerne Publishing",
    "Nod Publishers", "School of Fine Art", "Southridge Video", "The Phone Company",
    "Best For You Organics", "Bellows College", "Datum Corporation", "Fincher Architects",
    "Munson's Pickles", "Olympia Flower", "Rainier Ventures", "Sunrise Labs",
]  # fmt: skip


def at(day: date, hour: int = 9) -> str:
    return datetime.combine(day, time(hour)).isoformat() + "+00:00"


@dataclass
class Customer:
    id: str
    name: str
    terms: int
    behaviour: str  # on_time | late | partial | bounced | never
    subscriptions: list[tuple[str, tuple[str, str, str, Decimal, Decimal], int]]


class DemoBusiness:
    """Generates the partner's messages month by month (seeded: every run is identical)."""

    def __init__(self, customers: int = 36, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        self.counter = 0
        self.sent: list[str] = []
        # Most pay on time; every other way of paying shows up several times.
        behaviours = ["on_time", "late", "on_time", "partial", "on_time", "bounced", "never"]
        self.customers = []
        for n, name in enumerate(COMPANIES[:customers], start=1):
            chosen = self.rng.sample(PRODUCTS, k=self.rng.randint(1, 3))
            subscriptions = [
                (f"sub-{n:03d}-{i}", product, self.rng.choice([5, 10, 25, 50, 120]))
                for i, product in enumerate(chosen, start=1)
            ]
            self.customers.append(
                Customer(
                    id=f"tenant-{n:03d}",
                    name=name,
                    terms=self.rng.choice([14, 30, 30, 45]),
                    behaviour=behaviours[n % len(behaviours)],
                    subscriptions=subscriptions,
                )
            )

    def _message(self, kind: str, customer: Customer, day: date, **fields: Any) -> str:
        self.counter += 1
        body = {
            "message_id": f"demo-{self.counter:06d}",
            "type": kind,
            "customer_id": customer.id,
            "occurred_at": at(day),
            **fields,
        }
        line = json.dumps(body)
        self.sent.append(line)
        return line

    def mishaps(self) -> Iterator[str]:
        """What upstream systems really do: a message delivered twice, a payment in the
        wrong currency, and a truncated record."""
        yield self.sent[40]
        c = self.customers[1]
        yield self._message(
            "payment", c, date(2026, 2, 12), payment_id=f"pay-{c.id}-eur", amount="99.00",
            currency="EUR", method="card", reference="EUR card", invoice_id=None,
        )  # fmt: skip
        yield '{"message_id": "demo-truncated", "type": "payment", "customer_id": "ten'

    def registrations(self) -> Iterator[str]:
        for c in self.customers:
            yield self._message(
                "customer_registered", c, date(2026, 1, 1), name=c.name, currency="USD",
                payment_terms_days=c.terms, email=f"billing@{c.id}.example",
            )  # fmt: skip

    def charges(self, period: str, first: date, last: date) -> Iterator[str]:
        for c in self.customers:
            for sub_id, (product, sku, description, price, share), seats in c.subscriptions:
                usage = "usage" in description
                quantity = Decimal(self.rng.randint(800, 6000)) if usage else Decimal(seats)
                unit = Decimal("0.10") if usage else price
                amount = (quantity * unit).quantize(Decimal("0.01"))
                yield self._message(
                    "charge", c, last if usage else first,
                    charge_id=f"{sub_id}-{period}", subscription_id=sub_id, product_id=product,
                    sku_id=sku, description=description,
                    charge_type="usage" if usage else ("new" if period == "2026-01" else "cycle"),
                    quantity=str(quantity), unit_price=str(unit), amount=str(amount),
                    currency="USD", cost=str((amount * share).quantize(Decimal("0.01"))),
                    billing_period=period, charge_start=first.isoformat(),
                    charge_end=last.isoformat(),
                )  # fmt: skip

    def payments(self, invoices: dict[str, tuple[Decimal, date]], period: str) -> Iterator[str]:
        """Each customer pays its invoice the way it tends to."""
        for c in self.customers:
            found = invoices.get(c.id)
            if found is None or c.behaviour == "never":
                continue
            total, due = found
            payment_id = f"pay-{c.id}-{period}"
            if c.behaviour == "on_time":
                yield self._payment(c, payment_id, total, due - timedelta(days=3))
            elif c.behaviour == "late":
                yield self._payment(c, payment_id, total, due + timedelta(days=34))
            elif c.behaviour == "partial":
                half = (total / 2).quantize(Decimal("0.01"))
                yield self._payment(c, payment_id, half, due - timedelta(days=1))
            elif c.behaviour == "bounced":
                yield self._payment(c, payment_id, total, due - timedelta(days=2))
                yield self._message(
                    "payment_reversed", c, due + timedelta(days=5),
                    payment_id=payment_id, reason="returned",
                )  # fmt: skip

    def _payment(self, c: Customer, payment_id: str, amount: Decimal, day: date) -> str:
        return self._message(
            "payment", c, day, payment_id=payment_id, amount=str(amount), currency="USD",
            method=self.rng.choice(["card", "bank_transfer", "direct_debit"]),
            reference=f"REF-{payment_id}", invoice_id=None,
        )  # fmt: skip

    def support(self, first: date) -> Iterator[str]:
        for n, c in enumerate(self.customers[::3], start=1):
            ticket = f"T-{n:04d}"
            opened = first + timedelta(days=n)
            category = ["billing", "technical", "commercial"][n % 3]
            yield self._message(
                "support_ticket_opened", c, opened, ticket_id=ticket,
                channel=["email", "phone", "portal"][n % 3], category=category,
                severity=["a", "b", "c"][n % 3], subject=f"{category.title()} question",
            )  # fmt: skip
            yield self._message(
                "support_interaction", c, opened, ticket_id=ticket,
                minutes=self.rng.choice([15, 30, 45]), note="Triage", billable=n % 2 == 0,
            )  # fmt: skip
            if category == "technical":
                yield self._message(
                    "support_escalated", c, opened + timedelta(days=1), ticket_id=ticket,
                    vehicle="microsoft_advanced", microsoft_case_id=f"2601{n:06d}",
                )  # fmt: skip
            if n % 4 != 0:
                yield self._message(
                    "support_ticket_resolved", c, opened + timedelta(days=3), ticket_id=ticket,
                    resolution="Answered",
                )  # fmt: skip

    def settle_late(self, owed: dict[str, Decimal], day: date) -> Iterator[str]:
        """Bounced payers and some partial payers pay what they owe: subscriptions come back."""
        for n, c in enumerate(self.customers):
            catching_up = c.behaviour == "bounced" or (c.behaviour == "partial" and n % 2 == 0)
            if catching_up and owed.get(c.id, Decimal(0)) > 0:
                yield self._payment(c, f"pay-{c.id}-catchup", owed[c.id], day)


def ingest_lines(app: LedgerApplication, lines: Iterator[str], source: str) -> IngestCounts:
    records = [RawRecord(value=line, source=source, offset=n) for n, line in enumerate(lines, 1)]
    return process_records(app, records)


def open_invoices(app: LedgerApplication, period: str) -> dict[str, tuple[Decimal, date]]:
    found = {}
    for customer_id in app.customer_ids():
        account = app.get(customer_id)
        invoice = account.invoices.get(f"INV-{customer_id}-{period}")
        if invoice is not None:
            found[customer_id] = (invoice.total, invoice.due_date)
    return found


DEMO_DAY = date(2026, 4, 10)
RECON_COLUMNS = [
    "PartnerId", "CustomerId", "CustomerName", "InvoiceNumber", "ProductId", "SkuId",
    "SkuName", "ChargeType", "UnitPrice", "Quantity", "Subtotal", "TaxTotal", "Total",
    "Currency", "SubscriptionId", "ChargeStartDate", "ChargeEndDate", "BillingFrequency",
]  # fmt: skip
MS_CHARGE_TYPES = {"new": "new", "cycle": "cycleCharge", "usage": "usage", "renew": "renew"}


def microsoft_invoice_csv(app: LedgerApplication, period: str, invoice_number: str) -> bytes:
    """Microsoft's reconciliation file for the period, as Partner Center would export it,
    with two real-world surprises: one line billed at another cost, one charge not billed."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RECON_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    charges = [
        {**e.data, "customer_id": e.customer_id}
        for e in app.charge_events()
        if e.data["billing_period"] == period
    ]
    for n, charge in enumerate(charges):
        if n == 3:
            continue  # Microsoft did not bill this one (yet)
        subtotal = Decimal(charge["cost"]) + (Decimal("12.40") if n == 7 else 0)
        writer.writerow({
            "PartnerId": "3c9a1d5e-0000-4000-8000-000000000001",
            "CustomerId": charge["customer_id"], "CustomerName": charge["customer_id"],
            "InvoiceNumber": invoice_number, "ProductId": charge["product_id"],
            "SkuId": charge["sku_id"], "SkuName": charge["description"],
            "ChargeType": MS_CHARGE_TYPES.get(charge["charge_type"], charge["charge_type"]),
            "UnitPrice": charge["unit_price"], "Quantity": charge["quantity"],
            "Subtotal": str(subtotal), "TaxTotal": "0.00", "Total": str(subtotal),
            "Currency": charge["currency"], "SubscriptionId": charge["subscription_id"],
            "ChargeStartDate": charge["charge_start"], "ChargeEndDate": charge["charge_end"],
            "BillingFrequency": "Monthly",
        })  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


def run_demo(
    app: LedgerApplication,
    on_step: Callable[[str], None],
    dead_letters: DeadLetterStore | None = None,
) -> IngestCounts:
    """Run the scripted two months; `on_step` is told what just happened."""
    biz = DemoBusiness()
    totals = IngestCounts()

    def feed(lines: Iterator[str], what: str) -> None:
        counts = ingest_lines(app, lines, "demo")
        totals.add(counts)
        if dead_letters is not None and counts.dead_letters:
            dead_letters.add(counts.dead_letters)
        on_step(
            f"{what}: {counts.applied} applied, {counts.duplicate} duplicate, "
            f"{counts.deadlettered} dead-lettered"
        )

    feed(biz.registrations(), "registered customers")
    feed(biz.charges("2026-01", date(2026, 1, 1), date(2026, 1, 31)), "January charges")
    feed(biz.support(date(2026, 1, 5)), "support tickets")
    issued = app.run_invoices("2026-01", date(2026, 2, 1))
    on_step(f"invoice run 2026-01: {len(issued)} invoices")
    feed(biz.payments(open_invoices(app, "2026-01"), "2026-01"), "January payments")
    feed(biz.mishaps(), "a redelivery, a wrong currency, a truncated record")
    feed(biz.charges("2026-02", date(2026, 2, 1), date(2026, 2, 28)), "February charges")
    issued = app.run_invoices("2026-02", date(2026, 3, 1))
    on_step(f"invoice run 2026-02: {len(issued)} invoices")
    for day in (date(2026, 2, 23), date(2026, 3, 10), date(2026, 3, 20)):
        fired = app.run_collections(day)
        on_step(f"collections run {day}: {len(fired)} events")
    feed(biz.payments(open_invoices(app, "2026-02"), "2026-02"), "February payments")
    owed = {c: app.get(c).outstanding() for c in app.customer_ids()}
    feed(biz.settle_late(owed, date(2026, 4, 2)), "catch-up payments (reinstatements)")
    fired = app.run_collections(DEMO_DAY)
    on_step(f"collections run {DEMO_DAY}: {len(fired)} events")
    recon = microsoft_invoice_csv(app, "2026-01", "G012345678")
    imported = import_recon_file(app, recon, payment_terms_days=60, invoice_date=date(2026, 2, 8))
    summary = imported.report.summary()
    on_step(
        f"reconciled Microsoft invoice G012345678: {summary['matched']} lines matched, "
        f"{len(summary['missing_on_invoice'])} charge not billed, "
        f"{len(summary['amount_mismatches'])} amount mismatch"
    )
    # Half, rounded to the cent: a payment has the currency's decimals (SPEC §2).
    half = quantize(imported.recon.total / 2, imported.recon.currency)
    app.pay_microsoft("2026-01", half, "WIRE-2026-0301", date(2026, 3, 1))
    on_step("paid Microsoft half of January's invoice")
    return totals
