"""The invoice run: issue one invoice per customer for a billing period (SPEC §4)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime

import structlog

from ledger.app.backoff import with_backoff
from ledger.app.base import LedgerBase
from ledger.domain.account import CustomerAccount
from ledger.domain.errors import UnknownReference
from ledger.domain.stream import Meta

log = structlog.get_logger(__name__)
# INV-<customer id>-<YYYY-MM>[-<n>] (SPEC §4, §12); customer ids may hold "-" themselves.
_INVOICE_ID = re.compile(r"INV-(?P<customer>.+)-(?P<period>[0-9]{4}-[0-9]{2})(-[0-9]+)?")


class Invoicing(LedgerBase):
    def run_invoices(
        self, period: str, invoice_date: date, progress: Callable[[int], None] | None = None
    ) -> list[str]:
        """Issue this period's invoices. Idempotent: a second run issues nothing."""
        now = self.clock()

        def decide(customer_id: str) -> tuple[CustomerAccount | None, list[str]]:
            account = self.get(customer_id)
            invoice_id = account.next_invoice_id(period)
            if invoice_id is not None and account.issue_invoice(period, invoice_date, now):
                return account, [invoice_id]
            return None, []

        return self._for_each_customer(decide, progress=progress, what="invoice run")

    def void_invoice(self, invoice_id: str, reason: str, at: datetime | None = None) -> str:
        """Void `invoice_id` (SPEC §12; `CustomerAccount.void_invoice`) at business time `at`
        (default now) and return its customer id. Raises UnknownReference (not an invoice of
        any customer), InvalidState (already void, ...), PeriodClosedError (its billing
        period is closed, SPEC §13: a closed period's figures never change)."""
        from ledger.app.periods import refuse_if_closed

        match = _INVOICE_ID.fullmatch(invoice_id)
        account = self.find(match["customer"]) if match else None
        if match is None or account is None:
            raise UnknownReference(
                f"invoice_id: {invoice_id!r} is not an invoice of the ledger", field="invoice_id"
            )
        refuse_if_closed(self, match["period"], f"void of {invoice_id}")  # type: ignore[arg-type]

        def attempt() -> None:
            fresh = self.get(account.customer_id)
            now = self.clock()
            meta = Meta(occurred_at=at or now, recorded_at=now)
            fresh.void_invoice(invoice_id, reason, meta)
            self.save(fresh)

        with_backoff(attempt, what="invoice void")
        log.info("invoice.voided", invoice_id=invoice_id, customer_id=account.customer_id)
        return account.customer_id
