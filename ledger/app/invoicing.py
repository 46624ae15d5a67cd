"""The invoice run: issue one invoice per customer for a billing period (SPEC §4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ledger.app.base import LedgerBase
from ledger.domain.account import CustomerAccount


class Invoicing(LedgerBase):
    def run_invoices(
        self, period: str, invoice_date: date, progress: Callable[[int], None] | None = None
    ) -> list[str]:
        """Issue this period's invoices. Idempotent: a second run issues nothing."""
        now = self.clock()

        def decide(customer_id: str) -> tuple[CustomerAccount | None, list[str]]:
            account = self.get(customer_id)
            if account.issue_invoice(period, invoice_date, now):
                return account, [f"INV-{account.customer_id}-{period}"]
            return None, []

        return self._for_each_customer(decide, progress=progress, what="invoice run")
