"""The partner's account with Microsoft, per Microsoft billing currency (SPEC §11): the credit
limit, payments applied to Microsoft's invoices, unallocated money, and the alerts Microsoft's
rules call for.

Microsoft's rules (Partner Center, "Partner credit limit" and "Overdue balances" docs): it
warns a partner at 70 % and 85 % of its credit limit, at 100 % gives 24 hours to pay, and
suspends a partner whose billed amount is more than 60 days overdue (no new customers,
purchases or subscription changes until paid).

Two parts:
- `MicrosoftBook` functions: a pure fold of SPEC §5 events (dicts) into one JSON row per
  currency, and `position(row, as_of)`: the SPEC §11 `microsoft` view row on a date. The
  projection, the `ledger microsoft check` timeline and payment allocation all use them, so
  the view, the alerts and the allocations agree.
- `MicrosoftAccount`: the aggregate, one stream per currency (`microsoft:<CUR>`), holding the
  credit limits, payments to Microsoft (with their allocation to invoices) and the alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain import events as ev
from ledger.domain.account import end_of
from ledger.domain.errors import CurrencyMismatch, InvalidMessage, LedgerError
from ledger.domain.hashchain import GENESIS
from ledger.domain.money import fmt
from ledger.domain.remittance import is_repeated_payment
from ledger.domain.stream import ChainedStream, Meta

ZERO = Decimal(0)
HUNDRED = Decimal(100)
# Microsoft's credit-limit warnings (percent of the limit) and overdue steps (days past due).
CREDIT_THRESHOLDS = (70, 85, 100)
OVERDUE_DAYS = (30, 45, 60)
SUSPENSION_RISK_DAYS = 45  # past this, one more step to suspension
SUSPENDABLE_DAYS = 60  # Microsoft suspends a partner more than 60 days overdue

# The events the fold reads (besides ChargePosted).
BOOK_EVENTS = frozenset({
    "ChargePosted", "MicrosoftInvoiceRecorded", "MicrosoftPaymentRecorded",
    "MicrosoftCreditLimitSet", "MicrosoftPaymentMade", "MicrosoftPaymentAllocated",
})  # fmt: skip


class UnknownMicrosoftInvoice(LedgerError):
    code = "unknown_invoice"


class MicrosoftOverpayment(LedgerError):
    code = "overpayment"


def cost_currency(data: dict[str, Any]) -> str:
    """Microsoft's billing currency of a charge's cost: `cost_currency` when present (SPEC §3,
    optional), else the charge's `currency`."""
    value = data.get("cost_currency")
    return str(value) if value else str(data["currency"])


# ---- the fold: one row per Microsoft billing currency -----------------------------------------


def new_row(currency: str) -> dict[str, Any]:
    return {
        "currency": currency, "credit_limit": None, "credit_limit_since": None,
        "accrued": {}, "invoices": {}, "period_paid": {}, "allocated": {},
        "unallocated": "0",
    }  # fmt: skip


def book_currency(event: dict[str, Any]) -> str | None:
    """The currency row an event changes (None: the book ignores it)."""
    kind, data = event["event_type"], event["data"]
    if kind not in BOOK_EVENTS:
        return None
    if kind == "ChargePosted":
        return cost_currency(data)
    return str(data["currency"])


def _add(mapping: dict[str, str], key: str, amount: Decimal) -> None:
    mapping[key] = str(Decimal(mapping.get(key, "0")) + amount)


def apply_to_row(row: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The row after one event (events of other kinds leave it as it is)."""
    kind, data = event["event_type"], event["data"]
    currency = book_currency(event)
    assert currency is not None
    row = row or new_row(currency)
    if kind == "ChargePosted":
        _add(row["accrued"], data["billing_period"], Decimal(data["cost"]))
    elif kind == "MicrosoftInvoiceRecorded":
        row["invoices"][data["invoice_number"]] = {
            "billing_period": data["billing_period"], "amount": data["amount"],
            "invoice_date": data["invoice_date"], "due_date": data["due_date"],
        }  # fmt: skip
    elif kind == "MicrosoftPaymentRecorded":  # a payment for a period (`--period`)
        _add(row["period_paid"], data["billing_period"], Decimal(data["amount"]))
    elif kind == "MicrosoftCreditLimitSet":
        row["credit_limit"] = data["credit_limit"]
        row["credit_limit_since"] = data["effective_date"]
    elif kind == "MicrosoftPaymentMade":
        for item in data["allocations"]:
            _add(row["allocated"], item["invoice_number"], Decimal(item["amount"]))
        row["unallocated"] = str(Decimal(row["unallocated"]) + Decimal(data["unallocated"]))
    elif kind == "MicrosoftPaymentAllocated":
        _add(row["allocated"], data["invoice_number"], Decimal(data["amount"]))
        row["unallocated"] = str(Decimal(row["unallocated"]) - Decimal(data["amount"]))
    return row


def fold_book(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows per currency from events in order."""
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        currency = book_currency(event)
        if currency is not None:
            rows[currency] = apply_to_row(rows.get(currency), event)
    return rows


# ---- the position on a date -------------------------------------------------------------------


@dataclass(frozen=True)
class OpenItem:
    """A Microsoft invoice with what is still open on it."""

    invoice_number: str
    billing_period: str
    amount: Decimal
    invoice_date: str
    due_date: str
    paid: Decimal

    @property
    def open(self) -> Decimal:
        return self.amount - self.paid


def invoice_items(row: dict[str, Any]) -> tuple[list[OpenItem], Decimal]:
    """The row's invoices (due date, then number) with what is paid on each, and the money
    not applied to any invoice: the row's unallocated money, plus payments made for a period
    beyond its invoices, plus allocations to invoices the row does not hold (an as-of date
    before the invoice was recorded)."""
    invoices = sorted(row["invoices"].items(), key=lambda kv: (kv[1]["due_date"], kv[0]))
    loose = Decimal(row["unallocated"])
    allocated = {n: Decimal(a) for n, a in row["allocated"].items()}
    for number, amount in allocated.items():
        if number not in row["invoices"]:
            loose += amount
    # A payment for a period (`--period`) settles that period's invoices, earliest due first.
    period_left = {p: Decimal(a) for p, a in row["period_paid"].items()}
    items = []
    for number, inv in invoices:
        amount = Decimal(inv["amount"])
        paid = allocated.get(number, ZERO)
        share = min(max(amount - paid, ZERO), period_left.get(inv["billing_period"], ZERO))
        if share:
            period_left[inv["billing_period"]] -= share
        items.append(OpenItem(number, inv["billing_period"], amount, inv["invoice_date"],
                              inv["due_date"], paid + share))  # fmt: skip
    invoiced_periods = {inv["billing_period"] for inv in row["invoices"].values()}
    loose += sum((v for p, v in period_left.items() if p in invoiced_periods), ZERO)
    return items, loose


def days_past_due(item: OpenItem, as_of: date) -> int:
    if item.open <= 0:
        return 0
    return max((as_of - date.fromisoformat(item.due_date)).days, 0)


def credit_status(percent: Decimal | None) -> str:
    if percent is None or percent < 70:
        return "ok"
    if percent < 85:
        return "warning_70"
    if percent < 100:
        return "warning_85"
    return "at_limit"


def partner_status(oldest_days: int) -> str:
    """Microsoft's view of the partner: `suspendable` more than 60 days overdue,
    `suspension_risk` more than 45, `overdue` when anything is past due, else `current`."""
    if oldest_days > SUSPENDABLE_DAYS:
        return "suspendable"
    if oldest_days > SUSPENSION_RISK_DAYS:
        return "suspension_risk"
    if oldest_days > 0:
        return "overdue"
    return "current"


def credit_used(row: dict[str, Any]) -> Decimal:
    """Invoiced and unpaid + accrued not yet invoiced (less payments made for that period),
    less money paid and not yet applied; never below 0."""
    items, loose = invoice_items(row)
    invoiced_periods = {i.billing_period for i in items}
    uninvoiced = ZERO
    for period, accrued in row["accrued"].items():
        if period not in invoiced_periods:
            paid = Decimal(row["period_paid"].get(period, "0"))
            uninvoiced += max(Decimal(accrued) - paid, ZERO)
    used = sum((max(i.open, ZERO) for i in items), ZERO) + uninvoiced - loose
    return max(used, ZERO)


def used_percent(used: Decimal, limit: Decimal | None) -> Decimal | None:
    if limit is None or limit <= 0:
        return None
    return (used * HUNDRED / limit).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def position(row: dict[str, Any], as_of: date) -> dict[str, Any]:
    """The SPEC §11 `microsoft` view row of one currency on `as_of` (amounts as strings)."""
    cur = row["currency"]
    items, loose = invoice_items(row)
    limit = Decimal(row["credit_limit"]) if row["credit_limit"] is not None else None
    used = credit_used(row)
    percent = used_percent(used, limit)
    oldest = max((days_past_due(i, as_of) for i in items), default=0)
    return {
        "currency": cur,
        "credit_limit": fmt(limit, cur) if limit is not None else None,
        "credit_used": fmt(used, cur),
        "credit_used_percent": str(percent) if percent is not None else None,
        "credit_status": credit_status(percent),
        "invoices": [
            {
                "invoice_number": i.invoice_number,
                "billing_period": i.billing_period,
                "amount": fmt(i.amount, cur),
                "invoice_date": i.invoice_date,
                "due_date": i.due_date,
                "paid": fmt(i.paid, cur),
                "open": fmt(i.open, cur),
                "days_past_due": days_past_due(i, as_of),
            }
            for i in items
        ],
        "oldest_days_past_due": oldest,
        "partner_status": partner_status(oldest),
        "unallocated": fmt(loose, cur),
    }


# ---- allocation -------------------------------------------------------------------------------


def allocate(
    amount: Decimal, items: Sequence[OpenItem], first: str | None = None
) -> tuple[list[dict[str, Any]], Decimal]:
    """Apply `amount` to the named invoice first, then the oldest due (due date, number);
    returns the allocations `[{invoice_number, billing_period, amount}]` (Decimals) and the
    rest (unallocated)."""
    ordered = sorted(items, key=lambda i: (i.invoice_number != first, i.due_date,
                                           i.invoice_number))  # fmt: skip
    left, out = amount, []
    for item in ordered:
        if left <= 0:
            break
        take = min(left, item.open)
        if take > 0:
            out.append({"invoice_number": item.invoice_number,
                        "billing_period": item.billing_period, "amount": take})  # fmt: skip
            left -= take
    return out, left


# ---- alerts on a date -------------------------------------------------------------------------


def overdue_alerts(row: dict[str, Any], day: date) -> list[dict[str, Any]]:
    """MicrosoftInvoiceOverdue data for each invoice that is exactly 30, 45 or 60 days past
    due on `day` and still open at its end (the row holds the events up to that day)."""
    items, _ = invoice_items(row)
    out = []
    for item in items:
        for days in OVERDUE_DAYS:
            if item.open > 0 and date.fromisoformat(item.due_date) + timedelta(days) == day:
                out.append({
                    "currency": row["currency"], "invoice_number": item.invoice_number,
                    "billing_period": item.billing_period, "days": days,
                    "due_date": item.due_date, "overdue_on": day.isoformat(),
                    "open": fmt(item.open, row["currency"]),
                    "partner_status": partner_status(days),
                })  # fmt: skip
    return out


def threshold_alerts(
    row: dict[str, Any], day: date, before: Decimal | None
) -> tuple[list[dict[str, Any]], Decimal | None]:
    """MicrosoftCreditThresholdCrossed data for each threshold the credit use reached on
    `day` from below (`before`: the percent at the end of the previous day evaluated);
    returns them and the percent of `day`. At 100 % Microsoft gives 24 hours to pay:
    `respond_by` is the next day."""
    cur = row["currency"]
    limit = Decimal(row["credit_limit"]) if row["credit_limit"] is not None else None
    used = credit_used(row)
    percent = used_percent(used, limit)
    out = []
    if percent is not None and limit is not None:
        for threshold in CREDIT_THRESHOLDS:
            if percent >= threshold and (before is None or before < threshold):
                out.append({
                    "currency": cur, "threshold": threshold, "crossed_on": day.isoformat(),
                    "credit_limit": fmt(limit, cur), "credit_used": fmt(used, cur),
                    "credit_used_percent": str(percent),
                    "respond_by": (day + timedelta(days=1)).isoformat()
                    if threshold == 100 else None,
                })  # fmt: skip
    return out, percent


# ---- the aggregate ----------------------------------------------------------------------------

ACCOUNT_PREFIX = "microsoft:"


def account_stream(currency: str) -> str:
    """The pseudo customer id of the stream: `microsoft:USD`."""
    return f"{ACCOUNT_PREFIX}{currency}"


def microsoft_account_id(currency: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"csp-ledger:microsoft-account:{currency}")


def alert_key(kind: str, data: dict[str, Any]) -> str:
    """What makes an alert once-only: a threshold reached on a day; an invoice at N days."""
    if kind == "MicrosoftCreditThresholdCrossed":
        return f"credit:{data['threshold']}:{data['crossed_on']}"
    return f"overdue:{data['invoice_number']}:{data['days']}"


class MicrosoftAccount(ChainedStream):
    @classmethod
    def open(cls, currency: str, meta: Meta) -> MicrosoftAccount:
        return cls._start(
            ev.MicrosoftAccountOpened, microsoft_account_id(currency), account_stream(currency),
            {"currency": currency}, meta,
        )  # fmt: skip

    def __init__(self) -> None:
        self.customer_id = ""
        self.currency = ""
        self.head_hash = GENESIS
        self.credit_limit: Decimal | None = None
        self.limit_since: str | None = None
        self.payments: dict[str, dict[str, Any]] = {}  # reference -> {amount, paid_on}
        self.unallocated: dict[str, Decimal] = {}  # reference -> money not yet applied
        self.alerts: set[str] = set()

    # ---- commands -------------------------------------------------------------------------

    def set_credit_limit(self, amount: Decimal, effective: date, meta: Meta) -> bool:
        """Record the credit limit Microsoft granted from `effective` on. The same limit from
        the same date again changes nothing. Raises InvalidMessage when amount < 0."""
        if amount < 0:
            raise InvalidMessage(f"amount: must be >= 0, got {amount}", field="amount")
        if self.credit_limit == amount and self.limit_since == effective.isoformat():
            return False
        self._emit(ev.MicrosoftCreditLimitSet, {
            "currency": self.currency, "credit_limit": fmt(amount, self.currency),
            "effective_date": effective.isoformat(),
        }, meta)  # fmt: skip
        return True

    def make_payment(
        self,
        amount: Decimal,
        currency: str,
        reference: str,
        paid_on: date,
        items: Sequence[OpenItem],
        meta: Meta,
        *,
        invoice_number: str | None = None,
        force: bool = False,
    ) -> bool:
        """A payment to Microsoft: the named invoice first, then the oldest due; the rest is
        unallocated (settles the next invoice recorded).

        Idempotent by reference (same amount again: False). Raises Conflict (same reference,
        other amount), CurrencyMismatch, InvalidMessage (amount not > 0),
        UnknownMicrosoftInvoice, and MicrosoftOverpayment (more than all open invoices, unless
        `force`: the rest is unallocated).
        """
        if is_repeated_payment(self.payments, reference, amount, currency, self.currency):
            return False
        if currency != self.currency:
            raise CurrencyMismatch(f"currency: {currency} is not {self.currency}",
                                   field="currency")  # fmt: skip
        if amount <= 0:
            raise InvalidMessage(f"amount: must be > 0, got {amount}", field="amount")
        cur = self.currency
        if invoice_number is not None and not any(
            i.invoice_number == invoice_number for i in items
        ):
            raise UnknownMicrosoftInvoice(
                f"invoice: no Microsoft invoice {invoice_number!r} in {cur}", field="invoice"
            )
        # Like a customer's payment (SPEC §4): the named invoice, then the oldest due.
        allocations, rest = allocate(amount, items, invoice_number)
        if rest > 0 and not force:
            open_total = sum((max(i.open, ZERO) for i in items), ZERO)
            raise MicrosoftOverpayment(
                f"amount: {fmt(amount, cur)} {cur} exceeds the {fmt(open_total, cur)} {cur} "
                f"open on Microsoft's invoices in {cur}; use --force to keep the rest "
                "unallocated",
                field="amount",
            )
        self._emit(ev.MicrosoftPaymentMade, {
            "currency": cur, "amount": fmt(amount, cur), "reference": reference,
            "paid_on": paid_on.isoformat(), "invoice_number": invoice_number,
            "allocations": [dict(a, amount=fmt(a["amount"], cur)) for a in allocations],
            "unallocated": fmt(rest, cur), "forced": rest > 0,
        }, meta)  # fmt: skip
        return True

    def apply_unallocated(self, items: Sequence[OpenItem], meta: Meta) -> int:
        """Settle open invoices (oldest due first) with money paid and not yet applied, oldest
        payment first. Returns the number of allocations made."""
        made = 0
        for reference in list(self.unallocated):
            left = self.unallocated[reference]
            taken: dict[str, Decimal] = {}
            for item in sorted(items, key=lambda i: (i.due_date, i.invoice_number)):
                open_now = item.open - taken.get(item.invoice_number, ZERO)
                take = min(left, open_now)
                if take <= 0:
                    continue
                self._emit(ev.MicrosoftPaymentAllocated, {
                    "currency": self.currency, "reference": reference,
                    "invoice_number": item.invoice_number,
                    "billing_period": item.billing_period,
                    "amount": fmt(take, self.currency),
                }, meta)  # fmt: skip
                taken[item.invoice_number] = taken.get(item.invoice_number, ZERO) + take
                left -= take
                made += 1
                if left <= 0:
                    break
            items = [
                OpenItem(i.invoice_number, i.billing_period, i.amount, i.invoice_date,
                         i.due_date, i.paid + taken.get(i.invoice_number, ZERO))
                for i in items
            ]  # fmt: skip
        return made

    def record_alerts(self, kind: str, alerts: Iterable[dict[str, Any]], meta: Meta) -> int:
        """Record each alert not recorded before (see `alert_key`); returns how many."""
        cls = ev.EVENT_TYPES[kind]
        made = 0
        for data in alerts:
            if alert_key(kind, data) in self.alerts:
                continue
            day = data.get("crossed_on") or data["overdue_on"]
            self._emit(cls, data, meta, occurred_at=end_of(date.fromisoformat(day)))
            made += 1
        return made

    # ---- mutators -------------------------------------------------------------------------

    def _when_MicrosoftAccountOpened(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.customer_id = event.customer_id
        self.currency = data["currency"]

    def _when_MicrosoftCreditLimitSet(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.credit_limit = Decimal(data["credit_limit"])
        self.limit_since = data["effective_date"]

    def _when_MicrosoftPaymentMade(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.payments[data["reference"]] = {
            "amount": Decimal(data["amount"]), "paid_on": data["paid_on"],
            "allocations": data["allocations"], "unallocated": data["unallocated"],
        }  # fmt: skip
        rest = Decimal(data["unallocated"])
        if rest > 0:
            self.unallocated[data["reference"]] = rest

    def _when_MicrosoftPaymentAllocated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        left = self.unallocated.get(data["reference"], ZERO) - Decimal(data["amount"])
        if left > 0:
            self.unallocated[data["reference"]] = left
        else:
            self.unallocated.pop(data["reference"], None)

    def _when_MicrosoftCreditThresholdCrossed(
        self, data: dict[str, Any], event: ev.LedgerEvent
    ) -> None:
        self.alerts.add(alert_key("MicrosoftCreditThresholdCrossed", data))

    def _when_MicrosoftInvoiceOverdue(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.alerts.add(alert_key("MicrosoftInvoiceOverdue", data))
