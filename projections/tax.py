"""The SPEC §12 `tax` view: per billing period and currency, what was taxable, the tax
invoiced, the tax given back by credit notes, and the tax due. Folded from the accounts
projection's rows (each stored invoice keeps its `tax` and the tax credited on it).

A void invoice's own figures count for nothing (its journal entry was reversed), the tax
credit notes gave back on it still counts; a credit note's tax counts in the period of the
invoice it names. tax_due = tax_invoiced - tax_credited, which
is what the journal's `tax_payable` account holds for those invoices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt
from projections.base import Rows, dec

ZERO = Decimal(0)
FIELDS = ("taxable", "tax_invoiced", "tax_credited")


def tax_view(rows: Rows, period: str | None = None) -> list[dict[str, Any]]:
    """Rows `{billing_period, currency, taxable, tax_invoiced, tax_credited, tax_due}`
    sorted by period then currency (only `period` when given)."""
    sums: dict[tuple[str, str], dict[str, Decimal]] = {}
    for row in rows.values():
        currency = row.get("currency")
        for invoice in row.get("invoices", {}).values():
            billing_period = invoice.get("period")
            if not currency or billing_period is None:
                continue  # debit memos carry no tax
            if period is not None and billing_period != period:
                continue
            slot = sums.setdefault((billing_period, currency), dict.fromkeys(FIELDS, ZERO))
            # A credit note's tax stays given back when its invoice is voided later (the
            # credit then settles the reissue): only the void invoice's own entry is undone.
            slot["tax_credited"] += dec(invoice.get("tax_credited"))
            if not invoice.get("void"):
                total, tax = dec(invoice["total"]), dec(invoice.get("tax"))
                slot["taxable"] += total - tax
                slot["tax_invoiced"] += tax
    return [
        {
            "billing_period": billing_period,
            "currency": currency,
            **{name: fmt(value, currency) for name, value in slot.items()},
            "tax_due": fmt(slot["tax_invoiced"] - slot["tax_credited"], currency),
        }
        for (billing_period, currency), slot in sorted(sums.items())
    ]
