"""Double-entry posting rules: each money event becomes balanced journal lines.

Accounts receivable, unbilled receivable and unapplied cash/credits are kept per customer;
the others are the partner's. A negative amount (a credit-bearing charge) swaps sides. A
charge's cost posts in its `cost_currency` (Microsoft's), its revenue in the customer's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

CASH = "cash"
REVENUE = "revenue"
SUPPORT_REVENUE = "support_revenue"
COST_OF_SALES = "cost_of_sales"
PAYABLE_MICROSOFT = "payable_to_microsoft"
# Money paid to Microsoft and not yet applied to one of its invoices (an asset: prepaid).
UNALLOCATED_MICROSOFT = "unallocated_paid_to_microsoft"
BAD_DEBT = "bad_debt"
# Tax invoiced to customers and owed to the tax authority (SPEC §12), net of tax given back.
TAX_PAYABLE = "tax_payable"


def receivable(customer_id: str) -> str:
    return f"accounts_receivable:{customer_id}"


def unbilled(customer_id: str) -> str:
    return f"unbilled_receivable:{customer_id}"


def unapplied(customer_id: str) -> str:
    return f"unapplied_cash_and_credits:{customer_id}"


class Posting(NamedTuple):
    """One journal line: `debit` or `credit` is the amount (the other zero), exact."""

    # A named tuple, not a frozen dataclass: every projector and rebuild makes several per
    # event, and a tuple is made in a third of the time.
    account: str
    currency: str
    debit: Decimal
    credit: Decimal


_ZERO = Decimal(0)


def _entry(
    debit_account: str, credit_account: str, amount: Decimal, currency: str
) -> list[Posting]:
    if not amount:
        return []
    if amount < 0:
        debit_account, credit_account, amount = credit_account, debit_account, -amount
    return [
        Posting(debit_account, currency, amount, _ZERO),
        Posting(credit_account, currency, _ZERO, amount),
    ]


def postings_for(
    event_type: str, customer_id: str, currency: str, data: dict[str, Any]
) -> list[Posting]:
    """The journal lines of one event (empty for events that move no money)."""
    c = customer_id
    if event_type == "ChargePosted":
        income = SUPPORT_REVENUE if data["charge_type"] == "support" else REVENUE
        # Cost is owed to Microsoft in its billing currency (SPEC §10), revenue is in the
        # customer's: each side balances within its own currency.
        cost_currency = data.get("cost_currency") or currency
        return _entry(unbilled(c), income, Decimal(data["amount"]), currency) + _entry(
            COST_OF_SALES, PAYABLE_MICROSOFT, Decimal(data["cost"]), cost_currency
        )
    if event_type == "InvoiceIssued":
        # Gross to the receivable: the charges out of unbilled, the tax to tax payable.
        # Invoices stored before tax (SPEC §12) have no `tax`: all of the total is charges.
        total, tax = Decimal(data["total"]), Decimal(data.get("tax", "0"))
        if total < 0:
            # A credit invoice: the customer gets credit to apply, not a negative receivable.
            return _entry(unbilled(c), unapplied(c), tax - total, currency) + _entry(
                TAX_PAYABLE, unapplied(c), -tax, currency
            )
        return _entry(receivable(c), unbilled(c), total - tax, currency) + _entry(
            receivable(c), TAX_PAYABLE, tax, currency
        )
    if event_type == "InvoiceVoided":  # the invoice's entry reversed, tax included
        total, tax = Decimal(data["total"]), Decimal(data["tax"])
        return _entry(unbilled(c), receivable(c), total - tax, currency) + _entry(
            TAX_PAYABLE, receivable(c), tax, currency
        )
    if event_type == "InvoiceWrittenOff":
        return _entry(BAD_DEBT, receivable(c), Decimal(data["amount"]), currency)
    if event_type == "WriteOffReversed":
        return _entry(receivable(c), BAD_DEBT, Decimal(data["amount"]), currency)
    if event_type == "DebitMemoIssued":
        return _entry(receivable(c), unapplied(c), Decimal(data["total"]), currency)
    if event_type == "PaymentReceived":
        return _entry(CASH, unapplied(c), Decimal(data["amount"]), currency)
    if event_type == "CreditNoteIssued":
        # A credit note naming a taxed invoice gives back its tax part (SPEC §12).
        amount, tax = Decimal(data["amount"]), Decimal(data.get("tax", "0"))
        return _entry(REVENUE, unapplied(c), amount - tax, currency) + _entry(
            TAX_PAYABLE, unapplied(c), tax, currency
        )
    if event_type == "PaymentApplied":
        return _entry(unapplied(c), receivable(c), Decimal(data["amount"]), currency)
    if event_type == "PaymentUnapplied":
        return _entry(receivable(c), unapplied(c), Decimal(data["amount"]), currency)
    if event_type == "PaymentReversed":
        return _entry(unapplied(c), CASH, Decimal(data["amount"]), currency)
    if event_type == "RefundIssued":
        return _entry(unapplied(c), CASH, Decimal(data["amount"]), currency)
    if event_type == "MicrosoftPaymentRecorded":
        return _entry(PAYABLE_MICROSOFT, CASH, Decimal(data["amount"]), currency)
    if event_type == "MicrosoftCostAdjusted":  # the accrual trued up to Microsoft's invoice
        return _entry(COST_OF_SALES, PAYABLE_MICROSOFT, Decimal(data["adjustment"]), currency)
    if event_type == "MicrosoftPaymentMade":
        rest = Decimal(data["unallocated"])
        return _entry(PAYABLE_MICROSOFT, CASH, Decimal(data["amount"]) - rest, currency) + _entry(
            UNALLOCATED_MICROSOFT, CASH, rest, currency
        )
    if event_type == "MicrosoftPaymentAllocated":
        return _entry(PAYABLE_MICROSOFT, UNALLOCATED_MICROSOFT, Decimal(data["amount"]), currency)
    return []
