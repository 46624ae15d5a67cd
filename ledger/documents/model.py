"""The documents as data, read from one customer's stored events (SPEC §5 shape, oldest
first): an invoice, a statement of account, a collections notice. Amounts are Decimal; dates
are UTC calendar dates. Rendering (HTML, PDF, JSON) is elsewhere and only reads these.

Errors: `DocumentNotFound` (unknown invoice or event; the CLI and API say 404/exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.domain.account import end_of, start_of
from ledger.domain.money import fmt, minor_unit
from ledger.domain.policy import CollectionsPolicy
from projections.accounts import AccountsProjection, balance_row, delinquency_row
from projections.base import dec, fold, utc_date

ZERO = Decimal(0)
ACCOUNTS = AccountsProjection()
NOTICE_EVENTS = ("DunningNoticeSent", "SubscriptionSuspended", "SubscriptionReinstated")


class DocumentNotFound(LookupError):
    """No such invoice or notice for the customer."""


def money(amount: Decimal, currency: str) -> str:
    """`USD 6,840.00`: the currency's ISO minor units, thousands grouped, minus sign first."""
    places = minor_unit(currency)
    return f"{currency} {dec(fmt(amount, currency)):,.{places}f}"


def human_date(day: date | str | None) -> str:
    """`15 Feb 2026` (unambiguous in every locale); empty for None."""
    if day is None:
        return ""
    value = date.fromisoformat(day) if isinstance(day, str) else day
    return f"{value.day} {value.strftime('%b %Y')}"


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    currency: str
    email: str | None


def customer_of(events: list[dict[str, Any]]) -> Customer:
    """The customer's current details from its events (latest update of each field)."""
    row = fold(ACCOUNTS, events).get(events[0]["customer_id"]) if events else None
    if row is None or not row.get("currency"):
        raise DocumentNotFound("customer_id: not a registered customer")
    return Customer(row["customer_id"], row["name"], row["currency"], row.get("email"))


# ---- invoice -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    description: str
    period_start: str | None
    period_end: str | None
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    customer: Customer
    invoice_id: str
    kind: str  # "invoice", "credit_invoice" (total < 0) or "debit_memo"
    void: bool
    period: str | None
    invoice_date: str
    due_date: str
    currency: str
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    paid: Decimal  # settled by payments, credit notes and credit invoices, net of reversals
    amount_due: Decimal

    @property
    def title(self) -> str:
        return {"credit_invoice": "Credit invoice", "debit_memo": "Debit memo"}.get(
            self.kind, "Invoice"
        )


def invoice_document(events: list[dict[str, Any]], invoice_id: str) -> Invoice:
    """The invoice `invoice_id` of the customer whose events these are. Lines come from the
    ChargePosted events the invoice billed; tax is read with `.get` (0 when not recorded).
    Raises DocumentNotFound."""
    customer = customer_of(events)
    issued = next(
        (e for e in events if e["event_type"] in ("InvoiceIssued", "DebitMemoIssued")
         and e["data"].get("invoice_id") == invoice_id),
        None,
    )  # fmt: skip
    if issued is None:
        raise DocumentNotFound(f"invoice_id: {invoice_id!r} is not an invoice of this customer")
    data = issued["data"]
    currency = data.get("currency") or customer.currency
    charges = {
        e["data"]["charge_id"]: e["data"] for e in events if e["event_type"] == "ChargePosted"
    }
    lines = []
    for charge_id in data.get("charge_ids", []):
        charge = charges.get(charge_id, {})
        lines.append(
            InvoiceLine(
                description=charge.get("description") or charge_id,
                period_start=charge.get("charge_start"),
                period_end=charge.get("charge_end"),
                quantity=dec(charge.get("quantity", "1")),
                unit_price=dec(charge.get("unit_price", charge.get("amount", "0"))),
                amount=dec(charge.get("amount", "0")),
            )
        )
    if issued["event_type"] == "DebitMemoIssued":
        lines.append(
            InvoiceLine("Debit memo: refunded credit of a reversed payment", None, None,
                        Decimal(1), dec(data["total"]), dec(data["total"]))
        )  # fmt: skip
    total = dec(data["total"])
    tax = dec(data.get("tax", "0"))
    settled = ZERO
    for e in events:
        if e["event_type"] in ("PaymentApplied", "PaymentUnapplied") and (
            e["data"].get("invoice_id") == invoice_id
        ):
            sign = 1 if e["event_type"] == "PaymentApplied" else -1
            settled += sign * dec(e["data"]["amount"])
    kind = "debit_memo" if issued["event_type"] == "DebitMemoIssued" else (
        "credit_invoice" if total < 0 else "invoice"
    )  # fmt: skip
    return Invoice(
        customer=customer, invoice_id=invoice_id, kind=kind,
        void=bool(data.get("void")) or data.get("status") == "void" or any(
            e["event_type"] == "InvoiceVoided" and e["data"].get("invoice_id") == invoice_id
            for e in events
        ),
        period=data.get("period"),
        invoice_date=data.get("invoice_date") or utc_date(issued["occurred_at"]),
        due_date=data["due_date"], currency=currency, lines=lines,
        subtotal=dec(data.get("subtotal", total - tax)), tax=tax, total=total,
        paid=settled, amount_due=max(total - settled, ZERO),
    )  # fmt: skip


def invoice_ids(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["data"]["invoice_id"]
        for e in events
        if e["event_type"] in ("InvoiceIssued", "DebitMemoIssued")
    ]


# ---- statement of account ----------------------------------------------------------------

# How each event moves the balance (what the customer owes; the balances view's `balance`):
# +1 debit, -1 credit, 0 shown but no change (a debit memo only re-labels what the payment
# reversal already put back).
MOVEMENTS: dict[str, tuple[str, int]] = {
    "InvoiceIssued": ("invoice", 1),
    "DebitMemoIssued": ("debit_memo", 0),
    "PaymentReceived": ("payment", -1),
    "CreditNoteIssued": ("credit_note", -1),
    "RefundIssued": ("refund", 1),
    "PaymentReversed": ("reversal", 1),
    "InvoiceWrittenOff": ("write_off", -1),  # SPEC §12
    "WriteOffReversed": ("write_off_reversed", 1),
    "InvoiceVoided": ("void", -1),
}


@dataclass(frozen=True)
class StatementLine:
    date: str
    type: str
    reference: str
    description: str
    debit: Decimal
    credit: Decimal
    balance: Decimal


@dataclass(frozen=True)
class Statement:
    customer: Customer
    currency: str
    start: date
    end: date
    opening_balance: Decimal
    lines: list[StatementLine]
    closing_balance: Decimal
    aging: dict[str, Decimal]
    as_of_balance: Decimal = field(default=ZERO)  # the balances view on `end`, for checks

    def to_json(self) -> dict[str, Any]:
        """SPEC §14's JSON: amounts as strings with the currency's minor units."""
        c = self.currency
        return {
            "customer_id": self.customer.customer_id, "name": self.customer.name,
            "currency": c, "from": self.start.isoformat(), "to": self.end.isoformat(),
            "opening_balance": fmt(self.opening_balance, c),
            "lines": [
                {"date": line.date, "type": line.type, "reference": line.reference,
                 "description": line.description, "debit": fmt(line.debit, c),
                 "credit": fmt(line.credit, c), "balance": fmt(line.balance, c)}
                for line in self.lines
            ],
            "closing_balance": fmt(self.closing_balance, c),
            "aging": {k: fmt(v, c) for k, v in self.aging.items()},
        }  # fmt: skip


def _movement(event: dict[str, Any]) -> tuple[str, str, str, Decimal, Decimal] | None:
    """(type, reference, description, debit, credit) of an event, None if it moves nothing."""
    kind = MOVEMENTS.get(event["event_type"])
    if kind is None:
        return None
    name = kind[0]
    data = event["data"]
    amount = dec(data.get("total", data.get("amount", "0")))
    if name == "invoice":
        ref = data["invoice_id"]
        desc = f"Invoice for {data.get('period') or ''}, due {human_date(data['due_date'])}"
        if amount < 0:
            return "credit_invoice", ref, "Credit invoice", ZERO, -amount
        return name, ref, desc, amount, ZERO
    if name == "debit_memo":
        return name, data["invoice_id"], "Debit memo (refunded part of a reversed payment)", (
            ZERO), ZERO  # fmt: skip
    if name == "payment":
        ref = data.get("payment_id", "")
        return name, ref, f"Payment ({data.get('method', '')}) {data.get('reference') or ''}"\
            .strip(), ZERO, amount  # fmt: skip
    if name == "credit_note":
        reason = str(data.get("reason") or "")
        typ = "write_off" if "write" in reason.lower() else name
        return typ, data.get("credit_id", ""), f"Credit note {reason}".strip(), ZERO, amount
    if name == "refund":
        return name, data.get("refund_id", ""), "Refund", amount, ZERO
    if name == "write_off":
        return name, data["invoice_id"], f"Written off: {data.get('reason') or ''}".strip(), (
            ZERO), amount  # fmt: skip
    if name == "write_off_reversed":
        return name, data["invoice_id"], f"Write-off reversed: {data.get('reason') or ''}"\
            .strip(), amount, ZERO  # fmt: skip
    if name == "void":
        return name, data["invoice_id"], f"Invoice voided: {data.get('reason') or ''}".strip(), (
            ZERO), amount  # fmt: skip
    return name, data.get("payment_id", ""), f"Payment reversed ({data.get('reason', '')})",\
        amount, ZERO  # fmt: skip


def statement_document(events: list[dict[str, Any]], start: date, end: date) -> Statement:
    """The statement of account from `start` to `end` (UTC days, inclusive): the balance
    before `start`, every movement in business-time order with the running balance, the
    closing balance and the aging on `end` (both as the balances view has them on `end`).
    Raises ValueError when start > end."""
    if start > end:
        raise ValueError(f"from: {start.isoformat()} is after to {end.isoformat()}")
    customer = customer_of(events)
    cutoff, first = end_of(end), start_of(start)
    upto = [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= cutoff]
    ordered = sorted(
        upto, key=lambda e: (datetime.fromisoformat(e["occurred_at"]), e["stream_position"])
    )
    balance = opening = ZERO
    lines: list[StatementLine] = []
    for event in ordered:
        moved = _movement(event)
        if moved is None:
            continue
        typ, ref, desc, debit, credit = moved
        balance += debit - credit
        if datetime.fromisoformat(event["occurred_at"]) < first:
            opening = balance
            continue
        lines.append(
            StatementLine(utc_date(event["occurred_at"]), typ, ref, desc, debit, credit, balance)
        )
    row = fold(ACCOUNTS, upto)[customer.customer_id]
    view = balance_row(row, end)
    return Statement(
        customer=customer, currency=customer.currency, start=start, end=end,
        opening_balance=opening, lines=lines, closing_balance=balance,
        aging={k: dec(v) for k, v in view["aging"].items()}, as_of_balance=dec(view["balance"]),
    )  # fmt: skip


# ---- collections notices -----------------------------------------------------------------


@dataclass(frozen=True)
class OverdueLine:
    invoice_id: str
    due_date: str
    days_past_due: int
    amount: Decimal


@dataclass(frozen=True)
class Notice:
    customer: Customer
    notice_id: str  # the event's id (SPEC §5): stable, so the document id is too
    action: str  # reminder, final_notice, suspend, suspended, reinstated
    day: str
    currency: str
    overdue: list[OverdueLine]
    total_overdue: Decimal
    subscription_id: str | None
    next_action: str | None
    next_action_date: str | None

    @property
    def template(self) -> str:
        return f"notice_{self.action}.html"

    @property
    def title(self) -> str:
        return {
            "reminder": "Payment reminder", "final_notice": "Final notice before suspension",
            "suspend": "Suspension notice", "suspended": "Your subscription is suspended",
            "reinstated": "Your subscription is reinstated",
        }.get(self.action, "Account notice")  # fmt: skip


def notice_document(
    events: list[dict[str, Any]], event_id: str, policies: dict[str, CollectionsPolicy]
) -> Notice:
    """The notice for the DunningNoticeSent / SubscriptionSuspended / SubscriptionReinstated
    event `event_id`: what was overdue at the end of its day, and the next step of the
    customer's policy with its date. Raises DocumentNotFound."""
    customer = customer_of(events)
    event = next((e for e in events if e["event_id"] == event_id), None)
    if event is None or event["event_type"] not in NOTICE_EVENTS:
        raise DocumentNotFound(f"event_id: {event_id!r} is not a notice of this customer")
    day = date.fromisoformat(utc_date(event["occurred_at"]))
    upto = [e for e in events if datetime.fromisoformat(e["occurred_at"]) <= end_of(day)]
    row = fold(ACCOUNTS, upto)[customer.customer_id]
    overdue = []
    for invoice_id, inv in sorted(row["invoices"].items(), key=lambda kv: kv[1]["due_date"]):
        days = (day - date.fromisoformat(inv["due_date"])).days
        if dec(inv["remainder"]) > 0 and days > 0:
            overdue.append(OverdueLine(invoice_id, inv["due_date"], days, dec(inv["remainder"])))
    after = delinquency_row(row, day, policies)
    action = {
        "SubscriptionSuspended": "suspended", "SubscriptionReinstated": "reinstated",
    }.get(event["event_type"]) or event["data"]["action"]  # fmt: skip
    return Notice(
        customer=customer, notice_id=event_id, action=action, day=day.isoformat(),
        currency=customer.currency, overdue=overdue,
        total_overdue=sum((o.amount for o in overdue), ZERO),
        subscription_id=event["data"].get("subscription_id"),
        next_action=after["next_action"] if after else None,
        next_action_date=after["next_action_date"] if after else None,
    )  # fmt: skip


def notice_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events if e["event_type"] in NOTICE_EVENTS]
