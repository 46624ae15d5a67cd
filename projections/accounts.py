"""Per-customer rows: what was billed, paid, credited and refunded, open invoices, unapplied
credit, collections state. The `balances` and `delinquency` views are computed from them for
a date, because aging depends on the day you look."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ledger.domain.account import CASH_SOURCES
from ledger.domain.money import fmt
from ledger.domain.periods import PERIOD_EVENT_TYPES
from ledger.domain.personal import CUSTOMER_FIELDS, ERASED
from ledger.domain.policy import CollectionsPolicy, OverdueInvoice, next_action
from ledger.domain.remittance import REMITTANCE_EVENT_TYPES
from projections.base import Event, Row, Rows, dec, utc_date, utc_instant

AGING_BUCKETS = ("current", "d1_30", "d31_60", "d61_90", "d90_plus")
ZERO = Decimal(0)
SEVERITY = {"reminder": 1, "final_notice": 2, "suspend": 3}
# customer_updated field -> the row's column
UPDATED_COLUMNS = {
    "name": "name", "collections_policy": "policy", "payment_terms_days": "payment_terms_days",
    "email": "email", "tax_rate": "tax_rate", "tax_exempt": "tax_exempt", "tax_id": "tax_id",
    "country": "country", "address": "address",
}  # fmt: skip
TAX_COLUMNS = ("tax_rate", "tax_exempt", "tax_id", "country", "address")


class AccountsProjection:
    name = "accounts"

    def keys(self, event: Event) -> list[str]:
        if event["event_type"] in REMITTANCE_EVENT_TYPES:
            return []  # the `microsoft:<period>:<currency>` streams are not customers
        if event["event_type"] in PERIOD_EVENT_TYPES:
            return []  # nor is the ledger-wide `ledger:periods` stream
        return [event["customer_id"]]

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        row = row or _new_row(key)
        data = event["data"]
        handler = getattr(self, "_" + event["event_type"], None)
        if handler is not None:
            handler(row, data, event)
        return row

    def _CustomerRegistered(self, row: Row, data: dict[str, Any], event: Event) -> None:
        row.update(
            name=data["name"], currency=data["currency"],
            payment_terms_days=data.get("payment_terms_days", 30),
            policy=data.get("collections_policy") or "standard",
            email=data.get("email"), registered_at=event["occurred_at"],
        )  # fmt: skip
        for column in TAX_COLUMNS:  # SPEC §12; absent (stored before tax) is the default
            if data.get(column) is not None:
                row[column] = data[column]

    def _CustomerUpdated(self, row: Row, data: dict[str, Any], event: Event) -> None:
        # The latest update of each field by business time (then message id), as the
        # aggregate keeps it: an older update arriving late changes nothing.
        at = utc_instant(event["occurred_at"]).isoformat(timespec="microseconds")
        stamp = [at, event.get("message_id") or ""]
        stamps = row.setdefault("field_stamps", {})
        for field, column in UPDATED_COLUMNS.items():
            if data.get(field) is None:
                continue
            known = stamps.get(field)
            if known is None or stamp >= known:
                row[column] = data[field]
                stamps[field] = stamp

    # ---- SPEC §13: personal data restated sealed, or erased (ledger/app/erasure.py) ----

    def _CustomerPersonalDataEncrypted(self, row: Row, data: dict[str, Any], event: Event) -> None:
        for field in CUSTOMER_FIELDS:
            if data.get(field) is not None:
                row[UPDATED_COLUMNS.get(field, field)] = data[field]

    def _CustomerPersonalDataErased(self, row: Row, data: dict[str, Any], event: Event) -> None:
        for field in CUSTOMER_FIELDS:
            if row.get(UPDATED_COLUMNS.get(field, field)) is not None:
                row[UPDATED_COLUMNS.get(field, field)] = ERASED

    def _ChargePosted(self, row: Row, data: dict[str, Any], event: Event) -> None:
        row["unbilled_charges"][data["charge_id"]] = data["amount"]

    def _InvoiceIssued(self, row: Row, data: dict[str, Any], event: Event) -> None:
        for charge_id in data["charge_ids"]:
            row["unbilled_charges"].pop(charge_id, None)
        total = dec(data["total"])
        _add(row, "billed", total)
        row["invoices"][data["invoice_id"]] = {
            "due_date": data["due_date"], "total": str(total), "remainder": str(max(total, ZERO)),
            "kind": "invoice", "invoice_date": data.get("invoice_date"),
            "period": data.get("period"), "paid": "0", "credited": "0",
            # Gross total = subtotal + tax (SPEC §12); stored before tax: no tax.
            "tax": data.get("tax", "0"), "written_off": "0", "tax_credited": "0",
        }  # fmt: skip
        if total < 0:
            _add(row, "unapplied_credit", -total)

    def _DebitMemoIssued(self, row: Row, data: dict[str, Any], event: Event) -> None:
        row["invoices"][data["invoice_id"]] = {
            "due_date": data["due_date"], "total": data["total"], "remainder": data["total"],
            "kind": "debit_memo", "invoice_date": utc_date(event["occurred_at"]), "period": None,
            "paid": "0", "credited": "0",
        }  # fmt: skip
        _add(row, "unapplied_credit", dec(data["total"]))

    def _PaymentReceived(self, row: Row, data: dict[str, Any], event: Event) -> None:
        _add(row, "paid", dec(data["amount"]))
        _add(row, "unapplied_credit", dec(data["amount"]))
        # The latest payment date (UTC), not the last payment processed: the same payments
        # in any order give the same view.
        row["last_payment_date"] = max(
            row["last_payment_date"] or "", utc_date(event["occurred_at"])
        )

    def _CreditNoteIssued(self, row: Row, data: dict[str, Any], event: Event) -> None:
        _add(row, "credited", dec(data["amount"]))
        _add(row, "unapplied_credit", dec(data["amount"]))
        if "tax" in data:  # tax given back on the invoice it names (SPEC §12)
            invoice = row["invoices"][data["invoice_id"]]
            invoice["tax_credited"] = str(dec(invoice.get("tax_credited")) + dec(data["tax"]))

    def _InvoiceWrittenOff(self, row: Row, data: dict[str, Any], event: Event) -> None:
        self._write_off(row, data, dec(data["amount"]))

    def _WriteOffReversed(self, row: Row, data: dict[str, Any], event: Event) -> None:
        self._write_off(row, data, -dec(data["amount"]))

    def _write_off(self, row: Row, data: dict[str, Any], amount: Decimal) -> None:
        # Bad debt: no longer open, and neither paid nor credited (SPEC §12).
        invoice = row["invoices"][data["invoice_id"]]
        invoice["remainder"] = str(dec(invoice["remainder"]) - amount)
        invoice["written_off"] = str(dec(invoice.get("written_off")) + amount)
        # (`.get`: rows stored before write-offs have no such total)
        row["written_off"] = str(dec(row.get("written_off")) + amount)

    def _InvoiceVoided(self, row: Row, data: dict[str, Any], event: Event) -> None:
        # What settled it was taken back first (PaymentUnapplied): nothing is open on it.
        invoice = row["invoices"][data["invoice_id"]]
        invoice.update(remainder="0", void=True)
        _add(row, "billed", -dec(data["total"]))
        for charge in data["charges"]:
            row["unbilled_charges"][charge["charge_id"]] = charge["amount"]

    def _PaymentApplied(self, row: Row, data: dict[str, Any], event: Event) -> None:
        self._move(row, data, -dec(data["amount"]))

    def _PaymentUnapplied(self, row: Row, data: dict[str, Any], event: Event) -> None:
        self._move(row, data, dec(data["amount"]))

    def _move(self, row: Row, data: dict[str, Any], delta: Decimal) -> None:
        invoice = row["invoices"][data["invoice_id"]]
        invoice["remainder"] = str(dec(invoice["remainder"]) + delta)
        # What settled it: cash (payments) apart from credit notes and credit invoices, so
        # that "settled" is never read as "paid" (SPEC §6, §12).
        field = "paid" if data.get("source_type") in CASH_SOURCES else "credited"
        invoice[field] = str(dec(invoice.get(field)) - delta)
        _add(row, "unapplied_credit", delta)

    def _PaymentReversed(self, row: Row, data: dict[str, Any], event: Event) -> None:
        # The whole payment leaves credit; a debit memo gives back what was refunded out of it.
        _add(row, "paid", -dec(data["amount"]))
        _add(row, "unapplied_credit", -dec(data["amount"]))

    def _RefundIssued(self, row: Row, data: dict[str, Any], event: Event) -> None:
        _add(row, "refunded", dec(data["amount"]))
        _add(row, "unapplied_credit", -dec(data["amount"]))

    def _DunningNoticeSent(self, row: Row, data: dict[str, Any], event: Event) -> None:
        row["fired"].append(f"{data['invoice_id']}|{data['step']}")
        if data["action"] == "suspend":
            row.setdefault("fired_suspend", []).append(f"{data['invoice_id']}|{data['step']}")
        day = utc_date(event["occurred_at"])
        # The latest day's action, and of several steps fired on one day the most severe:
        # a maximum, so runs recorded in any order (a past date re-run) give the same view.
        last = (row["last_action_date"] or "", SEVERITY.get(row["last_action"] or "", 0))
        if (day, SEVERITY[data["action"]]) >= last:
            row["last_action"] = data["action"]
            row["last_action_date"] = day

    def _SubscriptionSuspended(self, row: Row, data: dict[str, Any], event: Event) -> None:
        day = utc_date(event["occurred_at"])
        known = row["suspended"].get(data["subscription_id"])
        row["suspended"][data["subscription_id"]] = min(known, day) if known else day
        # What lifts the suspension (the delinquency view says it once nothing is overdue).
        row["reinstatement"] = data.get("reinstatement")

    def _SubscriptionReinstated(self, row: Row, data: dict[str, Any], event: Event) -> None:
        row["suspended"].pop(data["subscription_id"], None)
        if not row["suspended"]:
            row.pop("reinstatement", None)
            # As the aggregate does: the reinstatement re-arms the suspend steps.
            rearmed = set(row.pop("fired_suspend", []))
            row["fired"] = [key for key in row["fired"] if key not in rearmed]


def _new_row(customer_id: str) -> Row:
    return {
        "customer_id": customer_id, "name": None, "currency": None, "policy": "standard",
        "payment_terms_days": 30, "billed": "0", "paid": "0", "credited": "0", "refunded": "0",
        "unapplied_credit": "0", "unbilled_charges": {}, "invoices": {}, "fired": [],
        "last_action": None, "last_action_date": None, "suspended": {},
        "last_payment_date": None, "email": None, "registered_at": None, "written_off": "0",
        "tax_rate": "0", "tax_exempt": False, "tax_id": None, "country": None, "address": None,
    }  # fmt: skip


def _add(row: Row, field: str, amount: Decimal) -> None:
    row[field] = str(dec(row[field]) + amount)


def _open_items(row: Row) -> list[OverdueInvoice]:
    items = [
        OverdueInvoice(iid, date.fromisoformat(inv["due_date"]), dec(inv["remainder"]))
        for iid, inv in row["invoices"].items()
        if dec(inv["remainder"]) > 0
    ]
    return sorted(items, key=lambda i: (i.due_date, i.invoice_id))


def _bucket(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "d1_30"
    if days_past_due <= 60:
        return "d31_60"
    if days_past_due <= 90:
        return "d61_90"
    return "d90_plus"


def balance_row(row: Row, as_of: date) -> dict[str, Any]:
    """The SPEC §6 `balances` row of one customer on `as_of`."""
    currency = row["currency"]
    if not currency:
        # Never another currency's rounding in its place: only registered customers have rows.
        raise ValueError(f"customer {row['customer_id']!r} has no currency (not registered)")
    aging = dict.fromkeys(AGING_BUCKETS, ZERO)
    outstanding = overdue = ZERO
    oldest_overdue = 0
    for item in _open_items(row):
        days = (as_of - item.due_date).days
        aging[_bucket(days)] += item.remainder
        outstanding += item.remainder
        if days > 0:
            overdue += item.remainder
            oldest_overdue = max(oldest_overdue, days)
    unapplied = dec(row["unapplied_credit"])
    money = {
        "billed": dec(row["billed"]),
        "unbilled": sum((dec(a) for a in row["unbilled_charges"].values()), ZERO),
        "paid": dec(row["paid"]),
        "credited": dec(row["credited"]),
        "refunded": dec(row["refunded"]),
        # Rows stored before write-offs (SPEC §12) have none.
        "written_off": dec(row.get("written_off")),
        "outstanding": outstanding,
        "unapplied_credit": unapplied,
        "balance": outstanding - unapplied,
        "overdue": overdue,
    }
    return {
        "customer_id": row["customer_id"],
        "name": row["name"],
        "currency": currency,
        **{k: fmt(v, currency) for k, v in money.items()},
        "days_past_due": oldest_overdue,
        "aging": {k: fmt(v, currency) for k, v in aging.items()},
        "status": "suspended" if row["suspended"] else "active",
        "last_payment_date": row["last_payment_date"],
    }


def delinquency_row(
    row: Row, as_of: date, policies: dict[str, CollectionsPolicy]
) -> dict[str, Any] | None:
    """The SPEC §6 `delinquency` row of one customer on `as_of`; None when nothing is overdue
    and the customer is not suspended (a suspended customer stays on the worklist until
    reinstated: with nothing overdue, `next_action` says what reinstates it,
    `reinstate_when_<rule>`, with no date).

    A customer whose policy does not exist is shown with that policy's name and no next
    action: another policy's steps are never put in its place (SPEC §4)."""
    balance = balance_row(row, as_of)
    suspended = bool(row["suspended"])
    if dec(balance["overdue"]) <= 0 and not suspended:
        return None
    policy = policies.get(row["policy"])
    fired = {(k.rsplit("|", 1)[0], int(k.rsplit("|", 1)[1])) for k in row["fired"]}
    upcoming = next_action(policy, _open_items(row), fired, as_of) if policy else None
    action: str | None = upcoming[0] if upcoming else None
    action_date = upcoming[1].isoformat() if upcoming else None
    if suspended and dec(balance["overdue"]) <= 0:
        # Nothing overdue, yet suspended: what is left to do is what reinstates it.
        rule = row.get("reinstatement") or (policy.reinstatement if policy else None)
        action, action_date = (f"reinstate_when_{rule}" if rule else None), None
    return {
        "customer_id": row["customer_id"],
        "name": row["name"],
        "currency": balance["currency"],
        "overdue": balance["overdue"],
        "days_past_due": balance["days_past_due"],
        "policy": row["policy"],
        "last_action": row["last_action"],
        "last_action_date": row["last_action_date"],
        "suspended_since": min(row["suspended"].values()) if suspended else None,
        "next_action": action,
        "next_action_date": action_date,
    }


def balances_view(rows: Rows, as_of: date) -> list[dict[str, Any]]:
    return [balance_row(r, as_of) for _, r in sorted(rows.items()) if r["currency"]]


def delinquency_view(
    rows: Rows, as_of: date, policies: dict[str, CollectionsPolicy]
) -> list[dict[str, Any]]:
    found = [delinquency_row(r, as_of, policies) for _, r in sorted(rows.items()) if r["currency"]]
    listed = [d for d in found if d is not None]
    return sorted(listed, key=lambda d: (-d["days_past_due"], d["customer_id"]))
