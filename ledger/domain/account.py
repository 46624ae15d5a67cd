"""The CustomerAccount aggregate: one stream per customer; it decides, its events record.

Commands validate against the current state and trigger events; the `_when_*` mutators only
change state, so replaying any prefix of a stream (as-of views) rebuilds the state it had.
Amounts in `data` are decimal strings; in state they are Decimals.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain import events as ev
from ledger.domain.account_corrections import Corrections
from ledger.domain.account_personal import PersonalData  # SPEC §13 erasure
from ledger.domain.account_state import (
    CASH_SOURCES,
    ZERO,
    AccountState,
    Invoice,
    MoneySource,
    SourceKind,
    UnbilledCharge,
    end_of,
    source_key,
    start_of,
    utc_day,
)
from ledger.domain.account_support import SupportTickets
from ledger.domain.errors import InsufficientCredit, InvalidState, UnknownPolicy, UnknownReference
from ledger.domain.ids import normalize_id
from ledger.domain.money import fmt
from ledger.domain.stream import Meta
from ledger.domain.tax import credited_tax, invoice_tax

# Re-exported: callers import these from here.
__all__ = [
    "CASH_SOURCES",
    "DEFAULT_POLICY",
    "ZERO",
    "CustomerAccount",
    "Meta",
    "account_id",
    "check_policy",
    "end_of",
    "start_of",
    "utc_day",
]


def account_id(customer_id: str) -> UUID:
    """The stream id of a customer: stable, derived from the Partner Center customer id in
    the ledger's spelling (a GUID in lower case, SPEC §2), so either case finds one stream.
    A stream registered before that rule under a GUID with upper-case letters has another
    id: `LedgerApplication.stream_id` finds it."""
    return uuid5(NAMESPACE_URL, f"csp-ledger:customer:{normalize_id(customer_id)}")


DEFAULT_POLICY = "standard"
TAX_FIELDS = ("tax_rate", "tax_exempt", "tax_id", "country", "address")
UPDATABLE_FIELDS = ("name", "payment_terms_days", "collections_policy", "email", *TAX_FIELDS)


def _stamp(event: ev.LedgerEvent) -> tuple[datetime, str]:
    """When a fact happened, ordered: its UTC business time, then its message id (so two
    facts of the same instant are ordered by their content, not by their arrival)."""
    return (event.occurred_at.astimezone(UTC), event.message_id or "")


def check_policy(name: str, known_policies: Collection[str]) -> None:
    """Refuse a collections policy that does not exist: it is never replaced by another
    (a typo or a policy file not loaded must not quietly become `standard`, SPEC §3/§4)."""
    if name not in known_policies:
        known = ", ".join(sorted(known_policies)) or "none"
        raise UnknownPolicy(
            f"collections_policy: {name!r} is not a defined collections policy (defined: {known})",
            field="collections_policy",
        )


def _cost_currency(charge: UnbilledCharge, currency: str) -> dict[str, str]:
    """`cost_currency` for an invoice's charge line, only when it is not the customer's."""
    other = charge.cost_currency
    return {"cost_currency": other} if other and other != currency else {}


class CustomerAccount(Corrections, SupportTickets, PersonalData):
    """A customer's stream. Its state: ledger/domain/account_state.py; its collections and
    support tickets: account_collections.py and account_support.py; here the customer,
    charges, invoices and the money that settles them."""

    # ---- creation -------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        customer_id: str,
        payload: dict[str, Any],
        meta: Meta,
        *,
        known_policies: Collection[str],
    ) -> CustomerAccount:
        """Start the customer's stream. `known_policies`: the names of the collections
        policies that exist (the caller loads the policy file). Raises UnknownPolicy."""
        check_policy(payload.get("collections_policy", DEFAULT_POLICY), known_policies)
        data = dict(payload, customer_id=customer_id)
        if meta.message_id is not None:
            data["fingerprint"] = meta.fingerprint
        return cls._start(ev.CustomerRegistered, account_id(customer_id), customer_id, data, meta)

    def __init__(self) -> None:
        # The state is declared in AccountState (ledger/domain/account_state.py). Called by
        # name: eventsourcing makes every aggregate subclass a dataclass, so Collections and
        # SupportTickets (next in the MRO) have generated __init__(customer_id, head_hash)s,
        # and without this method CustomerAccount would have one too.
        AccountState.__init__(self)

    # ---- customer -------------------------------------------------------------------------

    def update(
        self, payload: dict[str, Any], meta: Meta, *, known_policies: Collection[str]
    ) -> bool:
        """Change the customer's details. Raises Conflict, UnknownPolicy (a
        `collections_policy` not among `known_policies`)."""
        if self.is_duplicate(meta):
            return False
        if payload.get("collections_policy") is not None:
            check_policy(payload["collections_policy"], known_policies)
        self._emit(ev.CustomerUpdated, dict(payload), meta, caused_by_message=True)
        return True

    def _when_CustomerRegistered(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.customer_id = data["customer_id"]
        self.name = data["name"]
        self.currency = data["currency"]
        self.payment_terms_days = int(data.get("payment_terms_days", 30))
        self.collections_policy = data.get("collections_policy", "standard")
        self.email = data.get("email")
        # Tax fields (SPEC §12); a registration stored before them means rate 0, not exempt.
        for field in TAX_FIELDS:
            if data.get(field) is not None:
                setattr(self, field, data[field])
        self.tax_rate = Decimal(self.tax_rate)
        self.registered_at = event.occurred_at
        self._remember(event, "customer", "registration")

    def _when_CustomerUpdated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        # Each field holds its latest update by business time (any update overrides the
        # registration, which always comes first): an older update that arrives after a
        # newer one changes nothing (the same updates in any order, the same state).
        stamp = _stamp(event)
        for field in UPDATABLE_FIELDS:
            if data.get(field) is not None and stamp >= self.field_stamps.get(field, stamp):
                setattr(self, field, data[field])
                self.field_stamps[field] = stamp
        self.payment_terms_days = int(self.payment_terms_days)
        self.tax_rate = Decimal(self.tax_rate)
        self._remember(event)

    # ---- charges and invoices -------------------------------------------------------------

    def post_charge(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, "charge", payload["charge_id"]):
            return False
        self._check_currency(payload)
        self._emit(ev.ChargePosted, dict(payload), meta, caused_by_message=True)
        return True

    def _when_ChargePosted(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.unbilled[data["charge_id"]] = UnbilledCharge(
            amount_text=data["amount"],
            cost_text=data["cost"],
            billing_period=data["billing_period"],
            occurred_at=event.occurred_at,
            cost_currency=data.get("cost_currency"),  # Microsoft's, when not the customer's
        )
        # Charges stored before SPEC §2 may spell a GUID in upper case: one subscription.
        self.subscriptions.setdefault(normalize_id(data["subscription_id"]), "active")
        self._remember(event, "charge", data["charge_id"])

    def next_invoice_id(self, period: str) -> str | None:
        """The id the period's next invoice gets: `INV-<customer>-<YYYY-MM>`, after a void
        `-2`, `-3`, ... (SPEC §12); None when the period has an invoice that is not void."""
        base = f"INV-{self.customer_id}-{period}"
        invoice_id, number = base, 1
        while invoice_id in self.invoices:
            if not self.invoices[invoice_id].void:
                return None
            number += 1
            invoice_id = f"{base}-{number}"
        return invoice_id

    def issue_invoice(self, period: str, invoice_date: date, recorded_at: datetime) -> bool:
        """Put every unbilled charge of `period` or earlier on one invoice, with the
        customer's tax (SPEC §12: `subtotal`, `tax`, gross `total`). Idempotent: a period
        whose invoice stands issues nothing; after a void the next one gets `-2`, ..."""
        invoice_id = self.next_invoice_id(period)
        if invoice_id is None:
            return False
        charge_ids = sorted(cid for cid, c in self.unbilled.items() if c.billing_period <= period)
        if not charge_ids:
            return False
        subtotal = sum((self.unbilled[c].amount for c in charge_ids), ZERO)
        tax = invoice_tax(subtotal, self.tax_rate, self.tax_exempt, self.currency)
        total = subtotal + tax
        occurred = max(
            [start_of(invoice_date)] + [self.unbilled[c].occurred_at for c in charge_ids]
        )
        due = invoice_date + timedelta(days=self.payment_terms_days)
        meta = Meta(occurred_at=occurred, recorded_at=recorded_at)
        self._emit(
            ev.InvoiceIssued,
            {
                "invoice_id": invoice_id,
                "period": period,
                "invoice_date": invoice_date.isoformat(),
                "due_date": due.isoformat(),
                "subtotal": fmt(subtotal, self.currency),
                "tax": fmt(tax, self.currency),
                "total": fmt(total, self.currency),
                "currency": self.currency,
                "charge_ids": charge_ids,
                "charges": [
                    {
                        "charge_id": c,
                        "amount": fmt(self.unbilled[c].amount, self.currency),
                        "cost": fmt(
                            self.unbilled[c].cost, self.unbilled[c].cost_currency or self.currency
                        ),
                        "billing_period": self.unbilled[c].billing_period,
                        **_cost_currency(self.unbilled[c], self.currency),
                    }
                    for c in charge_ids
                ],
            },
            meta,
        )
        self._settle(meta)
        # A credit invoice (refunds outweigh charges) settles older invoices like a credit note.
        self._reinstate_if_rule_met(meta)
        return True

    def _when_InvoiceIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        total = Decimal(data["total"])
        charges = []
        for charge_id in data["charge_ids"]:
            charge = self.unbilled.pop(charge_id, None)
            if charge is not None:
                charges.append((charge_id, charge))
        # Invoices stored before tax (SPEC §12) have no `tax`: their total was all charges.
        self.invoices[data["invoice_id"]] = Invoice(
            total=total, remainder=max(total, ZERO), due_date=date.fromisoformat(data["due_date"]),
            occurred_at=event.occurred_at, tax=Decimal(data.get("tax", "0")),
            period=data.get("period"), charges=tuple(charges),
        )  # fmt: skip
        if total < 0:
            # A credit invoice (refunds outweigh charges): its value is credit to apply.
            self._add_source("invoice", data["invoice_id"], -total, event.occurred_at)

    def _open_invoice(self, invoice_id: str, due: str, total: Decimal, at: datetime) -> None:
        self.invoices[invoice_id] = Invoice(
            total=total,
            remainder=max(total, ZERO),
            due_date=date.fromisoformat(due),
            occurred_at=at,
        )

    def _when_DebitMemoIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._open_invoice(
            data["invoice_id"], data["due_date"], Decimal(data["total"]), event.occurred_at
        )

    # ---- payments, credits, refunds ------------------------------------------------------

    def receive_payment(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, "payment", payload["payment_id"]):
            return False
        self._check_currency(payload)
        self._emit(ev.PaymentReceived, dict(payload), meta, caused_by_message=True)
        self._settle(meta, preferred_invoice=payload.get("invoice_id"))
        self._reinstate_if_rule_met(meta)
        return True

    def _when_PaymentReceived(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._add_source("payment", data["payment_id"], Decimal(data["amount"]), event.occurred_at)
        self.payment_dates[data["payment_id"]] = utc_day(event.occurred_at)
        self._remember(event, "payment", data["payment_id"])

    def issue_credit_note(self, payload: dict[str, Any], meta: Meta) -> bool:
        """A credit note; one naming a taxed invoice gives back its tax in proportion (SPEC
        §12): the event then carries `tax` (the tax part of `amount`) and `tax_period`."""
        if self.is_duplicate(meta, "credit", payload["credit_id"]):
            return False
        self._check_currency(payload)
        data = dict(payload)
        invoice = self.invoices.get(payload.get("invoice_id") or "")
        if invoice is not None and not invoice.void and invoice.tax > 0:
            left = invoice.tax - self.tax_credited.get(payload["invoice_id"], ZERO)
            share = credited_tax(Decimal(payload["amount"]), invoice.total, invoice.tax,
                                 self.currency)  # fmt: skip
            tax = min(share, left)
            if tax > 0:
                data.update(tax=fmt(tax, self.currency), tax_period=invoice.period)
        self._emit(ev.CreditNoteIssued, data, meta, caused_by_message=True)
        self._settle(meta, preferred_invoice=payload.get("invoice_id"))
        self._reinstate_if_rule_met(meta)
        return True

    def _when_CreditNoteIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._add_source("credit", data["credit_id"], Decimal(data["amount"]), event.occurred_at)
        if "tax" in data:
            invoice_id = data["invoice_id"]
            credited = self.tax_credited.get(invoice_id, ZERO)
            self.tax_credited[invoice_id] = credited + Decimal(data["tax"])
        self._remember(event, "credit", data["credit_id"])

    def _add_source(self, kind: SourceKind, source_id: str, amount: Decimal, at: datetime) -> None:
        self.sources[source_key(kind, source_id)] = MoneySource(
            kind=kind,
            id=source_id,
            amount=amount,
            unapplied=amount,
            applied={},
            refunded=ZERO,
            reversed=False,
            occurred_at=at,
        )

    def _settle(self, meta: Meta, preferred_invoice: str | None = None) -> None:
        """Apply unapplied money (oldest source first) to open invoices (named one first,
        then the oldest due): afterwards there are open invoices or credit, never both."""
        # Money fully applied settles nothing (it would apply 0 and stop): not looked at.
        for key in [s.key for s in self.unapplied_oldest_first()]:
            targets = self.open_invoices()
            if not targets:  # settling only closes invoices: none will open
                return
            targets.sort(key=lambda item: item[0] != preferred_invoice)
            for invoice_id, invoice in targets:
                source = self.sources[key]  # as the last PaymentApplied left it
                amount = min(source.unapplied, invoice.remainder)
                if amount <= 0:
                    break
                occurred = max(meta.occurred_at, invoice.occurred_at, source.occurred_at)
                self._emit(
                    ev.PaymentApplied,
                    source.application(invoice_id, amount, self.currency),
                    meta,
                    occurred_at=occurred,
                )

    def _when_PaymentApplied(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount = Decimal(data["amount"])
        key = source_key(data["source_type"], data["source_id"])
        source = self.sources[key]
        invoice_id = data["invoice_id"]
        self.sources[key] = source.applied_to(invoice_id, amount)
        invoice = self.invoices[invoice_id]
        self.invoices[invoice_id] = invoice.with_remainder(invoice.remainder - amount)

    def reverse_payment(self, payload: dict[str, Any], meta: Meta) -> bool:
        payment_id = payload["payment_id"]
        if self.is_duplicate(meta, "reversal", payment_id):
            return False
        source = self.sources.get(source_key("payment", payment_id))
        if source is None:
            raise UnknownReference(
                f"payment_id: {payment_id!r} is not a payment of this customer",
                field="payment_id",
            )
        if source.reversed:
            raise InvalidState(
                f"payment_id: {payment_id!r} is already reversed", field="payment_id"
            )
        occurred = max(meta.occurred_at, source.occurred_at)
        for invoice_id, amount in sorted(source.applied.items()):
            if amount > 0:
                self._emit(
                    ev.PaymentUnapplied,
                    {
                        "source_type": "payment",
                        "source_id": payment_id,
                        "invoice_id": invoice_id,
                        "amount": fmt(amount, self.currency),
                        "currency": self.currency,
                    },
                    meta,
                    occurred_at=max(occurred, self.invoices[invoice_id].occurred_at),
                )
        refunded_out = source.refunded  # (what the PaymentUnapplied events left unchanged)
        self._emit(
            ev.PaymentReversed,
            dict(
                payload,
                amount=fmt(source.amount, self.currency),
                currency=self.currency,
                unapplied_removed=fmt(source.amount - refunded_out, self.currency),
            ),
            meta,
            occurred_at=occurred,
            caused_by_message=True,
        )
        if refunded_out > 0:
            # The money was already paid back out as a refund: the customer owes it again.
            self._emit(
                ev.DebitMemoIssued,
                {
                    "invoice_id": f"DM-{payment_id}",
                    "due_date": utc_day(occurred).isoformat(),
                    "total": fmt(refunded_out, self.currency),
                    "currency": self.currency,
                    "payment_id": payment_id,
                },
                meta,
                occurred_at=occurred,
            )
        self._settle(Meta(occurred_at=occurred, recorded_at=meta.recorded_at))
        return True

    def _when_PaymentUnapplied(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount = Decimal(data["amount"])
        key = source_key(data["source_type"], data["source_id"])
        source = self.sources[key]
        invoice_id = data["invoice_id"]
        self.sources[key] = source.taken_back_from(invoice_id, amount)
        invoice = self.invoices[invoice_id]
        self.invoices[invoice_id] = invoice.with_remainder(invoice.remainder + amount)

    def _when_PaymentReversed(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        key = source_key("payment", data["payment_id"])
        self.sources[key] = replace(self.sources[key], unapplied=ZERO, reversed=True)
        self._remember(event, "reversal", data["payment_id"])

    def issue_refund(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, "refund", payload["refund_id"]):
            return False
        self._check_currency(payload)
        amount = Decimal(payload["amount"])
        available = self.refundable_credit()
        if amount > available:
            other = self.unapplied_credit() - available
            held = (
                f" ({fmt(other, self.currency)} of credit from credit notes or credit invoices"
                " is not refundable)"
                if other > 0
                else ""
            )
            raise InsufficientCredit(
                f"amount: refund of {fmt(amount, self.currency)} exceeds the customer's "
                f"refundable (cash) credit of {fmt(available, self.currency)}{held}",
                field="amount",
            )
        drawn, left, occurred = [], amount, meta.occurred_at
        for source in self.unapplied_oldest_first():  # (take would be 0 for the others)
            if source.kind not in CASH_SOURCES:
                continue
            take = min(left, source.unapplied)
            if take > 0:
                drawn.append(
                    {"source_type": source.kind, "source_id": source.id,
                     "amount": fmt(take, self.currency)}
                )  # fmt: skip
                left -= take
                # Never before the money it pays out, or an as-of view shows negative credit.
                occurred = max(occurred, source.occurred_at)
        self._emit(
            ev.RefundIssued, dict(payload, drawn=drawn), meta, occurred_at=occurred,
            caused_by_message=True,
        )  # fmt: skip
        return True

    def _when_RefundIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        for part in data["drawn"]:
            key = source_key(part["source_type"], part["source_id"])
            source, amount = self.sources[key], Decimal(part["amount"])
            self.sources[key] = replace(
                source, unapplied=source.unapplied - amount, refunded=source.refunded + amount
            )
        self._remember(event, "refund", data["refund_id"])
