"""Paying Microsoft (SPEC §7): one MicrosoftRemittance stream per billing period and
currency holds Microsoft's invoice, its reconciliation report and the partner's payments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from ledger.app.base import LedgerBase
from ledger.domain import events as ev
from ledger.domain.account import Meta, start_of
from ledger.domain.errors import (
    Conflict,
    CurrencyMismatch,
    InvalidState,
)
from ledger.domain.remittance import MicrosoftRemittance, remittance_id, same_import

CHARGE_TOPIC = get_topic(ev.ChargePosted)
REMITTANCE_OPENED_TOPIC = get_topic(ev.MicrosoftRemittanceOpened)
MS_INVOICE_TOPIC = get_topic(ev.MicrosoftInvoiceRecorded)


class PayingMicrosoft(LedgerBase):
    def _events_of(self, topic: str) -> Iterator[ev.LedgerEvent]:
        for notification in self.notifications(topics=[topic]):
            event = self.mapper.to_domain_event(notification)
            assert isinstance(event, ev.LedgerEvent)
            yield event

    def charge_events(self) -> Iterator[ev.LedgerEvent]:
        """Every ChargePosted event, in global order (read once per reconciliation)."""
        return self._events_of(CHARGE_TOPIC)

    def find_remittance(self, period: str, currency: str) -> MicrosoftRemittance | None:
        try:
            remittance = self.repository.get(remittance_id(period, currency))
        except AggregateNotFoundError:
            return None
        assert isinstance(remittance, MicrosoftRemittance)
        return remittance

    def remittance_currencies(self, period: str) -> dict[str, Decimal]:
        """Currencies the partner owes Microsoft in for `period`, with the cost accrued in
        each (charges of the period, and streams opened by an invoice or a payment)."""
        accrued: dict[str, Decimal] = {}
        for event in self.charge_events():
            if event.data["billing_period"] == period:
                # Owed in Microsoft's currency (SPEC §10: cost_currency, default currency).
                currency = event.data.get("cost_currency") or event.data["currency"]
                accrued[currency] = accrued.get(currency, Decimal(0)) + Decimal(event.data["cost"])
        for event in self._events_of(REMITTANCE_OPENED_TOPIC):
            if event.data["billing_period"] == period:
                accrued.setdefault(event.data["currency"], Decimal(0))
        return accrued

    def recorded_microsoft_invoice(self, invoice_number: str) -> dict[str, Any] | None:
        """The MicrosoftInvoiceRecorded data of an invoice number, whatever its period."""
        for event in self._events_of(MS_INVOICE_TOPIC):
            if event.data["invoice_number"] == invoice_number:
                return event.data
        return None

    def record_microsoft_invoice(
        self, invoice: dict[str, Any], report: dict[str, Any], invoice_date: date
    ) -> bool:
        """Record Microsoft's invoice and its reconciliation report. Idempotent per invoice
        content; raises Conflict when the invoice number came before with other content."""
        known = self.recorded_microsoft_invoice(invoice["invoice_number"])
        if known is not None:
            if same_import(known, invoice):  # identity by content (SPEC §7), not bytes
                return False
            raise Conflict(
                f"invoice_number: {invoice['invoice_number']} was already imported with other "
                f"content (period {known['billing_period']})",
                field="invoice_number",
            )
        period, currency = invoice["billing_period"], invoice["currency"]
        meta = Meta(occurred_at=start_of(invoice_date), recorded_at=self.clock())
        remittance = self.find_remittance(period, currency) or MicrosoftRemittance.open(
            period, currency, meta
        )
        if not remittance.record_invoice(invoice, report, meta):
            return False
        self.save(remittance)
        return True

    def pay_microsoft(
        self,
        period: str,
        amount: Decimal,
        reference: str,
        paid_on: date,
        currency: str | None = None,
        *,
        force: bool = False,
    ) -> tuple[MicrosoftRemittance, bool]:
        """Record a payment to Microsoft for a billing period (idempotent by reference).

        Without `currency`, the period's only currency. Raises CurrencyMismatch (nothing is
        owed in that currency while something is in another), InvalidState (which currency
        is ambiguous), Overpayment (beyond what is due, unless `force`), Conflict.
        """
        owed = self.remittance_currencies(period)
        if currency is None:
            if len(owed) != 1:
                which = ", ".join(sorted(owed)) or "no currency (nothing accrued or invoiced)"
                raise InvalidState(
                    f"currency: Microsoft is owed for {period} in {which}; give --currency",
                    field="currency",
                )
            currency = next(iter(owed))
        elif owed and currency not in owed:
            raise CurrencyMismatch(
                f"currency: nothing is owed to Microsoft for {period} in {currency} "
                f"(owed in {', '.join(sorted(owed))})",
                field="currency",
            )
        meta = Meta(occurred_at=start_of(paid_on), recorded_at=self.clock())
        remittance = self.find_remittance(period, currency) or MicrosoftRemittance.open(
            period, currency, meta
        )
        applied = remittance.record_payment(
            amount, reference, paid_on, currency, meta,
            accrued=owed.get(currency, Decimal(0)), force=force,
        )  # fmt: skip
        if applied:
            self.save(remittance)
        return remittance, applied
