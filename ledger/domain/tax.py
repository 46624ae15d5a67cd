"""Sales tax / VAT on customer invoices (SPEC §12).

Accounting practice (e.g. EU VAT Directive 2006/112/EC art. 73 and 90; US sales tax alike):
tax is charged on the taxable amount of the invoice (its subtotal) at the customer's rate,
rounded once per invoice, and a credit note that reduces an invoice reduces its tax in
proportion. Amounts are Decimals in the customer's currency.
"""

from __future__ import annotations

from decimal import Decimal

from ledger.domain.money import quantize

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def invoice_tax(subtotal: Decimal, rate_percent: Decimal, exempt: bool, currency: str) -> Decimal:
    """The tax of an invoice: `subtotal` x `rate_percent` / 100, half-even to the currency's
    minor unit, once per invoice; 0 when the customer is exempt. A credit invoice (negative
    subtotal) gets negative tax: it gives tax back."""
    if exempt or rate_percent == 0:
        return ZERO
    return quantize(subtotal * rate_percent / HUNDRED, currency)


def credited_tax(
    amount: Decimal, invoice_total: Decimal, invoice_tax_amount: Decimal, currency: str
) -> Decimal:
    """The tax part of a credit note of gross `amount` naming an invoice of gross
    `invoice_total` carrying `invoice_tax_amount`: in proportion, half-even, never more than
    the invoice's tax (a credit beyond the invoice's total gives back no more tax)."""
    if invoice_total <= 0 or invoice_tax_amount == 0:
        return ZERO
    share = min(amount, invoice_total)
    return quantize(share * invoice_tax_amount / invoice_total, currency)
