"""The events of a customer's stream: small immutable facts in the past tense.

Every event carries its business time (`occurred_at`), the ingest `message_id` that caused it
(None for events the ledger decides on its own), a JSON-safe `data` payload (decimals as
strings, dates as ISO strings) and its place in the stream's hash chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate


class LedgerEvent(Aggregate.Event):
    customer_id: str
    occurred_at: datetime
    message_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def apply(self, aggregate: Any) -> None:
        # One mutator per event type on the aggregate: `_when_<EventType>(data, event)`.
        getattr(aggregate, f"_when_{type(self).__name__}")(self.data, self)
        aggregate.head_hash = self.hash


class CustomerRegistered(LedgerEvent, Aggregate.Created):
    pass


class CustomerUpdated(LedgerEvent):
    pass


class CustomerPersonalDataEncrypted(LedgerEvent):
    """The customer's current personal fields restated sealed (`ledger customers
    encrypt-existing`): written before encryption, they stay in clear in older events."""


class CustomerPersonalDataErased(LedgerEvent):
    """The customer's key was destroyed (SPEC §13): their personal fields read `[erased]`.
    Holds no personal data: the reason, the fields erased, the tickets whose subject was."""


class ChargePosted(LedgerEvent):
    pass


class InvoiceIssued(LedgerEvent):
    pass


class DebitMemoIssued(LedgerEvent):
    """A receivable raised when a reversed payment had already been refunded out."""


class PaymentReceived(LedgerEvent):
    pass


class PaymentApplied(LedgerEvent):
    """Money from a payment, credit note or credit invoice settled (part of) an invoice."""


class PaymentUnapplied(LedgerEvent):
    """A reversal took back what its payment had settled: the invoice reopens."""


class PaymentReversed(LedgerEvent):
    pass


class CreditNoteIssued(LedgerEvent):
    pass


class RefundIssued(LedgerEvent):
    pass


class InvoiceWrittenOff(LedgerEvent):
    """Part of an invoice written off to bad debt (SPEC §12): one event per invoice a
    `write_off` touched (`write_off_id`, `invoice_id`, `amount`, `currency`, `reason`)."""


class WriteOffReversed(LedgerEvent):
    """A write-off's part on one invoice reopened (`write_off_id`, `invoice_id`, `amount`,
    `currency`, `reason`)."""


class InvoiceVoided(LedgerEvent):
    """An invoice cancelled (SPEC §12): its charges are unbilled again, its journal entry
    reversed; `invoice_id`, `reason`, `period`, `subtotal`, `tax`, `total`, `currency`,
    `charges` (as on the invoice)."""


class DunningNoticeSent(LedgerEvent):
    pass


class SubscriptionSuspended(LedgerEvent):
    pass


class SubscriptionReinstated(LedgerEvent):
    pass


class SupportTicketOpened(LedgerEvent):
    pass


class SupportInteractionLogged(LedgerEvent):
    pass


class SupportTicketEscalated(LedgerEvent):
    pass


class SupportTicketResolved(LedgerEvent):
    pass


# ---- the partner's account with Microsoft: one stream per billing period and currency, whose
# `customer_id` is the pseudo stream name `microsoft:<YYYY-MM>:<CUR>` (ledger/domain/remittance.py)


class MicrosoftRemittanceOpened(LedgerEvent, Aggregate.Created):
    """The stream of one Microsoft billing period and currency begins."""


class MicrosoftInvoiceRecorded(LedgerEvent):
    """Microsoft's invoice for the period, imported from its reconciliation file."""


class ReconciliationRecorded(LedgerEvent):
    """What matching the invoice's lines with the ledger's charges found."""


class MicrosoftPaymentRecorded(LedgerEvent):
    """The partner paid Microsoft."""


class MicrosoftCostAdjusted(LedgerEvent):
    """The period's booked cost trued up to Microsoft's invoice (invoiced - accrued)."""


# ---- the partner's account with Microsoft per billing currency: stream `microsoft:<CUR>`
# (ledger/domain/microsoft.py)


class MicrosoftAccountOpened(LedgerEvent, Aggregate.Created):
    """The partner's account with Microsoft in one billing currency begins."""


class MicrosoftCreditLimitSet(LedgerEvent):
    """The credit limit Microsoft granted, from a date on."""


class MicrosoftPaymentMade(LedgerEvent):
    """The partner paid Microsoft: applied to invoices, the rest unallocated."""


class MicrosoftPaymentAllocated(LedgerEvent):
    """Unallocated money from an earlier payment settled a Microsoft invoice."""


class MicrosoftCreditThresholdCrossed(LedgerEvent):
    """Credit use reached 70, 85 or 100 % of the limit."""


class MicrosoftInvoiceOverdue(LedgerEvent):
    """A Microsoft invoice is 30, 45 or 60 days past due and still open."""


REMITTANCE_EVENTS = (
    MicrosoftRemittanceOpened, MicrosoftInvoiceRecorded, ReconciliationRecorded,
    MicrosoftPaymentRecorded, MicrosoftCostAdjusted,
)  # fmt: skip
MICROSOFT_ACCOUNT_EVENTS = (
    MicrosoftAccountOpened, MicrosoftCreditLimitSet, MicrosoftPaymentMade,
    MicrosoftPaymentAllocated, MicrosoftCreditThresholdCrossed, MicrosoftInvoiceOverdue,
)  # fmt: skip

EVENT_TYPES: dict[str, type[LedgerEvent]] = {
    cls.__name__: cls
    for cls in (
        CustomerRegistered, CustomerUpdated, CustomerPersonalDataEncrypted,
        CustomerPersonalDataErased, ChargePosted, InvoiceIssued, DebitMemoIssued,
        PaymentReceived, PaymentApplied, PaymentUnapplied, PaymentReversed, CreditNoteIssued,
        RefundIssued, InvoiceWrittenOff, WriteOffReversed, InvoiceVoided, DunningNoticeSent,
        SubscriptionSuspended, SubscriptionReinstated,
        SupportTicketOpened, SupportInteractionLogged, SupportTicketEscalated,
        SupportTicketResolved, *REMITTANCE_EVENTS, *MICROSOFT_ACCOUNT_EVENTS,
    )
}  # fmt: skip
