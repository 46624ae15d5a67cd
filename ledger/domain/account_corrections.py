"""Corrections to a customer's invoices (SPEC §12): write-offs to bad debt, their reversal,
and voiding an invoice so that its charges can be billed again.

`CustomerAccount` (ledger/domain/account.py) inherits these commands and mutators. Practice
followed: a write-off (allowance method, direct write-off of a specific receivable) credits
the receivable and debits bad debt expense; it is not a payment, so the money is neither
paid nor collected, and the customer is not reinstated by it. Reversing it reopens exactly
what it wrote off. A void cancels the invoice as if never issued (the journal entry is
reversed); money that had settled it becomes unapplied credit again, of the same kind.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.domain import events as ev
from ledger.domain.account_collections import Collections
from ledger.domain.account_state import ZERO, Invoice, UnbilledCharge
from ledger.domain.errors import ExceedsOpenAmount, InvalidState, UnknownReference
from ledger.domain.money import fmt
from ledger.domain.stream import Meta


class Corrections(Collections):
    """Write-offs, their reversals and voids on a customer's account."""

    def _settle(self, meta: Meta, preferred_invoice: str | None = None) -> None:
        raise NotImplementedError  # CustomerAccount's (ledger/domain/account.py)

    # ---- write-offs -----------------------------------------------------------------------

    def write_off(self, payload: dict[str, Any], meta: Meta) -> bool:
        """Write `amount` off to bad debt: of the named invoice, else of the oldest open
        invoices first; one `InvoiceWrittenOff` per invoice touched. Never reinstates.

        Raises Conflict, CurrencyMismatch, UnknownReference (an invoice the customer does
        not have), ExceedsOpenAmount (more than is open, naming `amount`)."""
        write_off_id = payload["write_off_id"]
        if self.is_duplicate(meta, "write_off", write_off_id):
            return False
        self._check_currency(payload)
        amount = Decimal(payload["amount"])
        invoice_id = payload.get("invoice_id")
        if invoice_id is not None:
            invoice = self.invoices.get(invoice_id)
            if invoice is None or invoice.void:
                raise UnknownReference(
                    f"invoice_id: {invoice_id!r} is not an open invoice of this customer",
                    field="invoice_id",
                )
            targets = [(invoice_id, invoice)]
        else:
            targets = self.open_invoices()
        available = sum((inv.remainder for _, inv in targets), ZERO)
        if amount > available:
            where = f"invoice {invoice_id}" if invoice_id else "the customer's open invoices"
            raise ExceedsOpenAmount(
                f"amount: write-off of {fmt(amount, self.currency)} exceeds what is open on "
                f"{where} ({fmt(available, self.currency)})",
                field="amount",
            )
        left, first = amount, True
        for target_id, invoice in targets:
            part = min(left, invoice.remainder)
            if part <= 0:
                continue
            self._emit(
                ev.InvoiceWrittenOff,
                {
                    "write_off_id": write_off_id,
                    "invoice_id": target_id,
                    "amount": fmt(part, self.currency),
                    "currency": self.currency,
                    "reason": payload["reason"],
                },
                meta,
                occurred_at=max(meta.occurred_at, invoice.occurred_at),
                caused_by_message=first,
            )
            left, first = left - part, False
        return True

    def _when_InvoiceWrittenOff(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount, invoice_id = Decimal(data["amount"]), data["invoice_id"]
        invoice = self.invoices[invoice_id]
        self.invoices[invoice_id] = replace(
            invoice, remainder=invoice.remainder - amount,
            written_off=invoice.written_off + amount,
        )  # fmt: skip
        parts = self.write_offs.setdefault(data["write_off_id"], {})
        parts[invoice_id] = parts.get(invoice_id, ZERO) + amount
        self._remember(event, "write_off", data["write_off_id"])

    def reverse_write_off(self, payload: dict[str, Any], meta: Meta) -> bool:
        """Reopen exactly what write-off `write_off_id` wrote off (a `WriteOffReversed` per
        invoice); unapplied credit then settles it at once. Raises Conflict,
        UnknownReference (no such write-off), InvalidState (already reversed)."""
        write_off_id = payload["write_off_id"]
        if self.is_duplicate(meta, "write_off_reversal", write_off_id):
            return False
        if write_off_id in self.reversed_write_offs:
            raise InvalidState(
                f"write_off_id: {write_off_id!r} is already reversed", field="write_off_id"
            )
        parts = self.write_offs.get(write_off_id)
        if parts is None:
            raise UnknownReference(
                f"write_off_id: {write_off_id!r} is not a write-off of this customer",
                field="write_off_id",
            )
        occurred = meta.occurred_at
        for first, (invoice_id, amount) in enumerate(sorted(parts.items())):
            self._emit(
                ev.WriteOffReversed,
                {
                    "write_off_id": write_off_id,
                    "invoice_id": invoice_id,
                    "amount": fmt(amount, self.currency),
                    "currency": self.currency,
                    "reason": payload["reason"],
                },
                meta,
                occurred_at=_latest(occurred, self.invoices[invoice_id].occurred_at),
                caused_by_message=first == 0,
            )
        self._settle(meta)
        return True

    def _when_WriteOffReversed(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount, invoice_id = Decimal(data["amount"]), data["invoice_id"]
        invoice = self.invoices[invoice_id]
        self.invoices[invoice_id] = replace(
            invoice, remainder=invoice.remainder + amount,
            written_off=invoice.written_off - amount,
        )  # fmt: skip
        self.reversed_write_offs.add(data["write_off_id"])
        self._remember(event, "write_off_reversal", data["write_off_id"])

    # ---- void -----------------------------------------------------------------------------

    def void_invoice(self, invoice_id: str, reason: str, meta: Meta) -> None:
        """Void an invoice: what settled it is taken back (`PaymentUnapplied`, so cash stays
        cash and credit stays credit), then `InvoiceVoided` returns its charges to unbilled
        and reverses its journal entry, tax included; the freed credit settles other open
        invoices. Raises UnknownReference (not an invoice of this customer), InvalidState
        (already void, a debit memo or credit invoice, or written off: reverse that first)."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise UnknownReference(
                f"invoice_id: {invoice_id!r} is not an invoice of this customer",
                field="invoice_id",
            )
        if invoice.void:
            raise InvalidState(f"invoice_id: {invoice_id!r} is already void", field="invoice_id")
        if invoice.period is None or invoice.total < 0:
            raise InvalidState(
                f"invoice_id: {invoice_id!r} is a debit memo or credit invoice; only an "
                "invoice of charges can be voided",
                field="invoice_id",
            )
        if invoice.written_off > 0:
            raise InvalidState(
                f"invoice_id: {invoice_id!r} has {fmt(invoice.written_off, self.currency)} "
                "written off; reverse the write-off before voiding it",
                field="invoice_id",
            )
        # Never dated before what it takes back: an as-of view never unapplies unpaid money.
        settled_by = [s for s in self.sources_oldest_first() if s.applied.get(invoice_id)]
        occurred = _latest(meta.occurred_at, invoice.occurred_at,
                           *(s.occurred_at for s in settled_by))  # fmt: skip
        for source in settled_by:
            amount = source.applied.get(invoice_id, ZERO)
            if amount > 0:
                self._emit(
                    ev.PaymentUnapplied,
                    source.application(invoice_id, amount, self.currency),
                    meta,
                    occurred_at=occurred,
                )
        self._emit(
            ev.InvoiceVoided,
            {
                "invoice_id": invoice_id,
                "reason": reason,
                "period": invoice.period,
                "subtotal": fmt(invoice.subtotal, self.currency),
                "tax": fmt(invoice.tax, self.currency),
                "total": fmt(invoice.total, self.currency),
                "currency": self.currency,
                "charges": [_charge_line(cid, c, self.currency) for cid, c in invoice.charges],
            },
            meta,
            occurred_at=occurred,
        )
        settle_at = Meta(occurred_at=occurred, recorded_at=meta.recorded_at)
        self._settle(settle_at)
        self._reinstate_if_rule_met(settle_at)

    def _when_InvoiceVoided(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        invoice: Invoice = self.invoices[data["invoice_id"]]
        for charge_id, charge in invoice.charges:
            # Unbilled again from the void on: the reissue is never dated before it.
            at = _latest(charge.occurred_at, event.occurred_at)
            self.unbilled[charge_id] = replace(charge, occurred_at=at)
        self.invoices[data["invoice_id"]] = replace(invoice, remainder=ZERO, void=True)


def _latest(*instants: datetime) -> datetime:
    return max(instants)


def _charge_line(charge_id: str, charge: UnbilledCharge, currency: str) -> dict[str, str]:
    """A voided invoice's charge as the invoice listed it (the projections unbill it)."""
    line = {
        "charge_id": charge_id,
        "amount": fmt(charge.amount, currency),
        "cost": fmt(charge.cost, charge.cost_currency or currency),
        "billing_period": charge.billing_period,
    }
    if charge.cost_currency and charge.cost_currency != currency:
        line["cost_currency"] = charge.cost_currency
    return line
