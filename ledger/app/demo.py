"""A realistic two months of a CSP partner's business, generated deterministically and run
through the real pipeline: validation, idempotent ingest, invoice runs, payments (on time,
late, partial, bounced), collections that suspend and reinstate, support with escalations.
January's charges arrive priced from upstream; February is billed from Microsoft's own Partner
Center file with the partner's price book (SPEC §10): a markup, a customer-specific price, an
annual price protection, a removeQuantity credit and a customer billed in EUR from a USD file."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.app.application import LedgerApplication
from ledger.app.billing import BillingReport, bill_file, lookup_from_accounts
from ledger.app.ingest import IngestCounts, RawRecord, process_records
from ledger.app.reconcile import import_recon_file
from ledger.domain.money import quantize
from ledger.domain.pricebook import load_price_book

if TYPE_CHECKING:  # only its type: the app layer does not pull in the database driver
    from ledger.store.deadletters import DeadLetterStore

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
    currency: str = "USD"


EUR_CUSTOMER = 4  # tenant-005 is billed in EUR (Microsoft bills the partner in USD)
# tenant-005 is an Irish company: 23 % would be Ireland's standard rate; the demo shows a
# round 20 % VAT (SPEC §12 tax fields).
VAT = {"tax_rate": "20", "country": "IE", "tax_id": "IE9876543W",
       "address": "2 Grand Canal Quay, Dublin D02 A342, Ireland"}  # fmt: skip
EUR_PER_USD = Decimal("0.92")  # the partner's rate, in the price book's [fx]


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
        self.customers[EUR_CUSTOMER].currency = "EUR"

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
            tax = VAT if c.currency == "EUR" else {}
            yield self._message(
                "customer_registered", c, date(2026, 1, 1), name=c.name, currency=c.currency,
                payment_terms_days=c.terms, email=f"billing@{c.id}.example", **tax,
            )  # fmt: skip

    def write_offs(self, app: LedgerApplication, day: date) -> Iterator[str]:
        """The first customer that never pays is insolvent: all it owes goes to bad debt."""
        c = next(c for c in self.customers if c.behaviour == "never")
        owed = app.get(c.id).outstanding()
        if owed > 0:
            yield self._message(
                "write_off", c, day, write_off_id=f"WO-{c.id}", amount=str(owed),
                currency=c.currency, reason="uncollectible: customer insolvent",
            )  # fmt: skip

    def charges(self, period: str, first: date, last: date) -> Iterator[str]:
        for c in self.customers:
            for sub_id, (product, sku, description, price, share), seats in c.subscriptions:
                usage = "usage" in description
                quantity = Decimal(self.rng.randint(800, 6000)) if usage else Decimal(seats)
                unit = Decimal("0.10") if usage else price
                amount = (quantity * unit).quantize(Decimal("0.01"))
                cost = (amount * share).quantize(Decimal("0.01"))
                foreign: dict[str, str] = {}
                if c.currency != "USD":  # Microsoft's cost stays in USD, at the partner's rate
                    cost = (amount * share / EUR_PER_USD).quantize(Decimal("0.01"))
                    foreign = {"cost_currency": "USD", "cost_fx_rate": str(EUR_PER_USD)}
                yield self._message(
                    "charge", c, last if usage else first,
                    charge_id=f"{sub_id}-{period}", subscription_id=sub_id, product_id=product,
                    sku_id=sku, description=description,
                    charge_type="usage" if usage else ("new" if period == "2026-01" else "cycle"),
                    quantity=str(quantity), unit_price=str(unit), amount=str(amount),
                    currency=c.currency, cost=str(cost),
                    billing_period=period, charge_start=first.isoformat(),
                    charge_end=last.isoformat(), **foreign,
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
            "payment", c, day, payment_id=payment_id, amount=str(amount), currency=c.currency,
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
            "Currency": charge.get("cost_currency") or charge["currency"],
            "SubscriptionId": charge["subscription_id"],
            "ChargeStartDate": charge["charge_start"], "ChargeEndDate": charge["charge_end"],
            "BillingFrequency": "Monthly",
        })  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


PC_COLUMNS = [*RECON_COLUMNS, "BillableQuantity", "TermAndBillingCycle"]


def _first_seat_subscription(c: Customer) -> tuple[str, tuple[str, str, str, Decimal, Decimal],
                                                     int] | None:  # fmt: skip
    return next((s for s in c.subscriptions if "usage" not in s[1][2]), None)


def partner_center_csv(
    biz: DemoBusiness, period: str, first: date, last: date, invoice_number: str
) -> bytes:
    """Microsoft's new-commerce reconciliation file for a month of the business (USD), as
    Partner Center exports it (BOM, CRLF, M/D/YYYY dates): a cycle charge per seat
    subscription, Azure usage, and seats removed mid-month by one customer (a credit)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PC_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    us_day = lambda d: f"{d.month}/{d.day}/{d.year}"  # noqa: E731

    def line(c: Customer, sub: str, product: tuple[str, str, str, Decimal, Decimal],
             kind: str, quantity: Decimal, subtotal: Decimal, start: date) -> None:  # fmt: skip
        writer.writerow({
            "PartnerId": "3c9a1d5e-0000-4000-8000-000000000001", "CustomerId": c.id,
            "CustomerName": c.name, "InvoiceNumber": invoice_number, "ProductId": product[0],
            "SkuId": product[1], "SkuName": product[2], "ChargeType": kind,
            "UnitPrice": str((product[3] * product[4]).quantize(Decimal("0.0001"))),
            "Quantity": str(quantity), "BillableQuantity": str(quantity),
            "Subtotal": str(subtotal), "TaxTotal": "0.00", "Total": str(subtotal),
            "Currency": "USD", "SubscriptionId": sub, "ChargeStartDate": us_day(start),
            "ChargeEndDate": us_day(last), "BillingFrequency": "Monthly",
            "TermAndBillingCycle": "1 Year Subscription - Monthly billing",
        })  # fmt: skip

    for c in biz.customers:
        for sub_id, product, seats in c.subscriptions:
            if "usage" in product[2]:
                quantity = Decimal(biz.rng.randint(800, 6000))
                cost = (quantity * Decimal("0.10") * product[4]).quantize(Decimal("0.01"))
                line(c, sub_id, product, "usage", quantity, cost, first)
            else:
                cost = (Decimal(seats) * product[3] * product[4]).quantize(Decimal("0.01"))
                line(c, sub_id, product, "cycleCharge", Decimal(seats), cost, first)
    # Two seats removed on the 15th: Microsoft credits the rest of the month.
    c = biz.customers[2]
    found = _first_seat_subscription(c)
    if found is not None:
        sub_id, product, _ = found
        start = first + timedelta(days=14)
        days = Decimal((last - start).days + 1) / Decimal((last - first).days + 1)
        credit = (2 * product[3] * product[4] * days).quantize(Decimal("0.01"))
        line(c, sub_id, product, "removeQuantity", Decimal(2), -credit, start)
    return out.getvalue().encode("utf-8-sig")


def demo_price_book(biz: DemoBusiness) -> str:
    """The partner's price book (TOML): 17.65 % over cost by default (the list price over an
    85 % cost), Azure usage at 10 %, tenant-002's negotiated price, tenant-006's price
    protected for 2026, and the EUR rate."""
    rules = ['[defaults]\nmarkup_percent = "17.65"\nmin_margin_percent = "10"\n',
             '[[rules]]\ncharge_types = ["usage"]\nmarkup_percent = "10"\n']  # fmt: skip
    for index, label, factor, window in (
        (1, "a negotiated price", Decimal("0.95"), ""),
        (5, "January's price, protected for the year",
         Decimal(1), 'valid_from = "2026-01-01"\nvalid_to = "2026-12-31"\n'),
    ):  # fmt: skip
        # The first customer from `index` on with a seat subscription.
        c, found = next((c, f) for c in biz.customers[index:]
                        if (f := _first_seat_subscription(c)) is not None)  # fmt: skip
        product = found[1]
        price = (product[3] * factor).quantize(Decimal("0.01"))
        rules.append(
            f'[[rules]]  # {c.name}: {label}\ncustomer_id = "{c.id}"\n'
            f'product_id = "{product[0]}"\n{window}unit_price = "{price}"\n'
        )
    rules.append(f'[fx]\n"USD->EUR" = "{EUR_PER_USD}"\n')
    return "\n".join(rules)


FEBRUARY_INVOICE = "G012399999"
FORGOTTEN_CUSTOMER = "tenant-004"  # SPEC §13: one customer asks to be forgotten
ERASURE_REASON = "erasure request DSR-2026-001 (GDPR Art. 17)"


def run_demo(
    app: LedgerApplication,
    on_step: Callable[[str], None],
    dead_letters: DeadLetterStore | None = None,
    files: dict[str, bytes] | None = None,
) -> IngestCounts:
    """Run the scripted two months; `on_step` is told what just happened. `files` receives
    February's Partner Center file and the price book (to bill again by hand)."""
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
    void_and_reissue(app, biz, on_step)
    billed = bill_february(app, biz, totals, dead_letters, files)
    summed = billed.totals()
    margins = ", ".join(f"{r['margin']} {r['currency']}"
                        for r in summed.get("by_currency", [summed]))  # fmt: skip
    on_step(
        f"billed February from Microsoft's file {FEBRUARY_INVOICE} with the price book: "
        f"{billed.billed} charges, margin {margins}"
    )
    issued = app.run_invoices("2026-02", date(2026, 3, 1))
    on_step(f"invoice run 2026-02: {len(issued)} invoices")
    for day in (date(2026, 2, 23), date(2026, 3, 10), date(2026, 3, 20)):
        fired = app.run_collections(day)
        on_step(f"collections run {day}: {len(fired)} events")
    feed(biz.payments(open_invoices(app, "2026-02"), "2026-02"), "February payments")
    owed = {c: app.get(c).outstanding() for c in app.customer_ids()}
    feed(biz.settle_late(owed, date(2026, 4, 2)), "catch-up payments (reinstatements)")
    feed(biz.write_offs(app, date(2026, 4, 6)), "write-off of an insolvent customer's invoices")
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
    microsoft_side(app, imported.recon.total, on_step)
    forgotten = app.forget(FORGOTTEN_CUSTOMER, ERASURE_REASON)  # SPEC §13
    on_step(
        f"erasure request: forgot {forgotten.customer_id} (key destroyed; its name and support "
        "subjects now read [erased], its amounts stay)"
    )
    return totals


def demo_corrections() -> list[tuple[str, str]]:
    """(customer id, what happened) of the demo's taxed, voided and written-off customers."""
    biz = DemoBusiness()  # seeded: the same customers as the run
    return [
        (biz.customers[EUR_CUSTOMER].id, "20 % VAT"),
        (next(c for c in biz.customers if c.behaviour == "partial").id, "voided and reissued"),
        (next(c for c in biz.customers if c.behaviour == "never").id, "written off"),
    ]


def void_and_reissue(
    app: LedgerApplication, biz: DemoBusiness, on_step: Callable[[str], None]
) -> None:
    """A partial payer's January invoice went out wrong: it is voided (its partial payment
    becomes unapplied credit again) and the January run reissues it as `-2`, which that
    credit settles in part at once (SPEC §12)."""
    c = next(c for c in biz.customers if c.behaviour == "partial")
    voided = f"INV-{c.id}-2026-01"
    app.void_invoice(
        voided, "sent to the wrong billing contact", at=datetime(2026, 2, 20, 9, tzinfo=UTC)
    )
    reissued = app.run_invoices("2026-01", date(2026, 2, 20))
    on_step(f"voided {voided} and reissued it as {', '.join(reissued)}")


def microsoft_side(
    app: LedgerApplication, january: Decimal, on_step: Callable[[str], None]
) -> None:
    """The partner's account with Microsoft (SPEC §11): the rest of January paid with 1,000.00
    in advance (unallocated, it settles February's invoice when that is recorded), and a
    credit limit that the partner's use has run close to: the check records the warnings."""
    from ledger.app.microsoft import book_events, check, pay, set_credit_limit
    from ledger.domain.microsoft import credit_used, fold_book

    rest = january - january / 2
    pay(app, rest + Decimal("1000.00"), "USD", "WIRE-2026-0305", date(2026, 3, 5), force=True)
    on_step("paid Microsoft the rest of January and 1000.00 in advance (unallocated)")
    february = microsoft_invoice_csv(app, "2026-02", "G012345679")
    import_recon_file(app, february, payment_terms_days=60, invoice_date=date(2026, 3, 8))
    on_step("reconciled Microsoft invoice G012345679: the advance settled part of it")
    # A limit the partner uses about 90 % of on the demo day (rounded up to 1,000.00).
    used = credit_used(fold_book(book_events(app))["USD"])
    limit = (used / Decimal("0.9") / 1000).to_integral_value(rounding="ROUND_CEILING") * 1000
    set_credit_limit(app, limit, "USD", date(2026, 1, 1))
    alerts = check(app, DEMO_DAY).alerts
    crossed = ", ".join(f"{a['threshold']}%" for a in alerts if "threshold" in a)
    on_step(f"Microsoft credit limit {limit:.2f} USD; check {DEMO_DAY}: {len(alerts)} alerts "
            f"(credit use crossed {crossed})")  # fmt: skip


def bill_february(
    app: LedgerApplication, biz: DemoBusiness, totals: IngestCounts,
    dead_letters: DeadLetterStore | None, files: dict[str, bytes] | None = None,
) -> BillingReport:  # fmt: skip
    """`ledger bill partner-center` of February's file, in-process."""

    def send(records: list[RawRecord]) -> IngestCounts:
        counts = process_records(app, records)
        totals.add(counts)
        if dead_letters is not None and counts.dead_letters:
            dead_letters.add(counts.dead_letters)
        return counts

    raw = partner_center_csv(biz, "2026-02", date(2026, 2, 1), date(2026, 2, 28),
                             FEBRUARY_INVOICE)  # fmt: skip
    text = demo_price_book(biz)
    if files is not None:
        files[f"partner-center-{FEBRUARY_INVOICE}.csv"] = raw
        files["prices.toml"] = text.encode("utf-8")
    book = load_price_book(text, "demo price book")
    return bill_file(raw, book, lookup_from_accounts(app.find), send, source="demo")
