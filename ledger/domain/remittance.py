"""The MicrosoftRemittance aggregate: what Microsoft invoiced the partner for one billing period
and currency, what the reconciliation of that invoice found, and what the partner paid.

One stream per (billing period, currency). Its events are LedgerEvents, hash-chained like a
customer's, so they are published on `ledger.events` and checked by `ledger audit verify`;
their `customer_id` is the pseudo stream name `microsoft:<YYYY-MM>:<CUR>`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain import events as ev
from ledger.domain.errors import Conflict, CurrencyMismatch, InvalidMessage, LedgerError
from ledger.domain.hashchain import GENESIS
from ledger.domain.money import check_scale, fmt
from ledger.domain.stream import ChainedStream, Meta

STREAM_PREFIX = "microsoft:"
# Events of the ledger's own Microsoft streams (no customer's): per period and per currency.
REMITTANCE_EVENT_TYPES = frozenset(
    cls.__name__ for cls in (*ev.REMITTANCE_EVENTS, *ev.MICROSOFT_ACCOUNT_EVENTS)
)
ZERO = Decimal(0)


class Overpayment(LedgerError):
    """A payment to Microsoft larger than what is due for the period (allowed with force)."""

    code = "overpayment"


def remittance_stream(billing_period: str, currency: str) -> str:
    """The pseudo customer id of the stream: `microsoft:2025-01:USD`."""
    return f"{STREAM_PREFIX}{billing_period}:{currency}"


def remittance_id(billing_period: str, currency: str) -> UUID:
    """The stream id: stable, derived from the (billing period, currency) pair."""
    return uuid5(NAMESPACE_URL, f"csp-ledger:microsoft-remittance:{billing_period}:{currency}")


def same_import(known: dict[str, Any], invoice: dict[str, Any]) -> bool:
    """Whether `invoice` (MicrosoftInvoiceRecorded data) is the import `known` recorded.

    The identity of an import is its content (`content_sha256`: invoice number, currency and
    the lines' normalised content, SPEC §7), never its bytes. Imports recorded before content
    identity carry only `file_sha256`: for them only the exact same file is the same import.
    """
    if known.get("content_sha256") is not None:
        return bool(known["content_sha256"] == invoice.get("content_sha256"))
    return bool(known["file_sha256"] == invoice["file_sha256"])


def is_repeated_payment(
    payments: dict[str, dict[str, Any]],
    reference: str,
    amount: Decimal,
    currency: str,
    own_currency: str,
) -> bool:
    """True when `reference` was already recorded as this very payment (no second effect).
    Raises Conflict when the reference was used for another amount or currency. `payments`:
    reference -> {"amount": Decimal, "paid_on": ...}, as the Microsoft streams keep them."""
    known = payments.get(reference)
    if known is None:
        return False
    if known["amount"] == amount and currency == own_currency:
        return True
    raise Conflict(
        f"reference: {reference!r} was already recorded as a payment of "
        f"{fmt(known['amount'], own_currency)} {own_currency} on {known['paid_on']}",
        field="reference",
    )


class MicrosoftRemittance(ChainedStream):
    @classmethod
    def open(cls, billing_period: str, currency: str, meta: Meta) -> MicrosoftRemittance:
        data = {"billing_period": billing_period, "currency": currency}
        return cls._start(
            ev.MicrosoftRemittanceOpened,
            remittance_id(billing_period, currency),
            remittance_stream(billing_period, currency),
            data,
            meta,
        )

    def __init__(self) -> None:
        self.customer_id = ""
        self.billing_period = ""
        self.currency = ""
        self.head_hash = GENESIS
        # invoice number -> {"amount", "due_date", "invoice_date", "file_sha256",
        # "content_sha256" (None for imports recorded before content identity)}
        self.invoices: dict[str, dict[str, Any]] = {}
        # payment reference -> {"amount", "paid_on"}
        self.payments: dict[str, dict[str, Any]] = {}
        self.cost_adjusted = ZERO  # sum of MicrosoftCostAdjusted: booked cost - accrued

    # ---- state ----------------------------------------------------------------------------

    @property
    def invoiced(self) -> Decimal | None:
        """Sum of Microsoft's invoices for the period; None before the first is recorded."""
        if not self.invoices:
            return None
        return sum((i["amount"] for i in self.invoices.values()), ZERO)

    @property
    def paid(self) -> Decimal:
        return sum((p["amount"] for p in self.payments.values()), ZERO)

    @property
    def due_date(self) -> str | None:
        """The earliest due date of the period's invoices (the one to pay by)."""
        dates = [i["due_date"] for i in self.invoices.values()]
        return min(dates) if dates else None

    def due(self, accrued: Decimal) -> Decimal:
        """Invoiced (or, before reconciliation, the accrued cost) minus what is paid."""
        invoiced = self.invoiced
        return (invoiced if invoiced is not None else accrued) - self.paid

    # ---- commands -------------------------------------------------------------------------

    def record_invoice(self, invoice: dict[str, Any], report: dict[str, Any], meta: Meta) -> bool:
        """Record Microsoft's invoice and the reconciliation that came with it.

        Idempotent: the same invoice (same number and line content, `same_import`) again
        changes nothing. Raises Conflict when the invoice number was recorded with other
        content, and
        InvalidMessage when the invoice is not of this stream's period and currency.
        """
        number = invoice["invoice_number"]
        known = self.invoices.get(number)
        if known is not None:
            if same_import(known, invoice):
                return False
            raise Conflict(
                f"invoice_number: {number} was already imported with other content",
                field="invoice_number",
            )
        self._check_stream(invoice["billing_period"], invoice["currency"])
        self._emit(ev.MicrosoftInvoiceRecorded, dict(invoice), meta)
        self._emit(
            ev.ReconciliationRecorded,
            dict(report, invoice_number=number, billing_period=self.billing_period,
                 currency=self.currency),
            meta,
        )  # fmt: skip
        return True

    def record_payment(
        self,
        amount: Decimal,
        reference: str,
        paid_on: date,
        currency: str,
        meta: Meta,
        *,
        accrued: Decimal,
        force: bool = False,
    ) -> bool:
        """Record a payment to Microsoft for this period.

        Idempotent by reference: the same reference and amount again changes nothing.
        Raises Conflict (same reference, other amount), CurrencyMismatch, InvalidMessage
        (amount not > 0) and Overpayment (more than is due, unless `force`).
        """
        if is_repeated_payment(self.payments, reference, amount, currency, self.currency):
            return False
        if currency != self.currency:
            raise CurrencyMismatch(
                f"currency: {currency} differs from the currency {self.currency} of "
                f"{self.customer_id}",
                field="currency",
            )
        if amount <= 0:
            raise InvalidMessage(f"amount: must be > 0, got {amount}", field="amount")
        # More decimals than the currency has would be rounded away when stored (SPEC §2).
        check_scale(amount, self.currency, "amount")
        due = self.due(accrued)
        over = amount > due
        if over and not force:
            basis = "invoiced" if self.invoiced is not None else "accrued (not yet reconciled)"
            raise Overpayment(
                f"amount: {fmt(amount, self.currency)} {self.currency} exceeds the "
                f"{fmt(max(due, ZERO), self.currency)} {self.currency} due to Microsoft for "
                f"{self.billing_period} ({basis}); use --force to record it anyway",
                field="amount",
            )
        self._emit(
            ev.MicrosoftPaymentRecorded,
            {
                "billing_period": self.billing_period,
                "currency": self.currency,
                "amount": fmt(amount, self.currency),
                "reference": reference,
                "paid_on": paid_on.isoformat(),
                "forced": over,
            },
            meta,
        )
        return True

    def true_up(self, accrued: Decimal, meta: Meta) -> bool:
        """Book the period's cost at what Microsoft invoiced: post (invoiced - accrued) less
        what earlier true-ups posted, so that payable_to_microsoft for the period is invoiced
        minus paid (charges accrue their cost as they are posted). Nothing before an invoice
        is recorded, or when nothing changed."""
        invoiced = self.invoiced
        if invoiced is None:
            return False
        adjustment = invoiced - accrued - self.cost_adjusted
        if adjustment == 0:
            return False
        self._emit(ev.MicrosoftCostAdjusted, {
            "billing_period": self.billing_period, "currency": self.currency,
            "accrued_cost": fmt(accrued, self.currency),
            "microsoft_invoiced": fmt(invoiced, self.currency),
            "adjustment": fmt(adjustment, self.currency),
        }, meta)  # fmt: skip
        return True

    def _check_stream(self, billing_period: str, currency: str) -> None:
        if (billing_period, currency) != (self.billing_period, self.currency):
            raise InvalidMessage(
                f"billing_period/currency: {billing_period} {currency} is not the period "
                f"of {self.customer_id}"
            )

    # ---- emitting -------------------------------------------------------------------------

    # ---- mutators -------------------------------------------------------------------------

    def _when_MicrosoftRemittanceOpened(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.customer_id = event.customer_id
        self.billing_period = data["billing_period"]
        self.currency = data["currency"]

    def _when_MicrosoftInvoiceRecorded(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.invoices[data["invoice_number"]] = {
            "amount": Decimal(data["amount"]),
            "due_date": data["due_date"],
            "invoice_date": data["invoice_date"],
            "file_sha256": data["file_sha256"],
            "content_sha256": data.get("content_sha256"),
        }

    def _when_ReconciliationRecorded(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        pass  # a report for auditors and finance; it changes no state

    def _when_MicrosoftPaymentRecorded(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.payments[data["reference"]] = {
            "amount": Decimal(data["amount"]),
            "paid_on": data["paid_on"],
        }

    def _when_MicrosoftCostAdjusted(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.cost_adjusted += Decimal(data["adjustment"])
