"""A CustomerAccount's state: `AccountState` (what an account holds, and the reads of it) and
the small frozen records it holds (charges, invoices, money sources, the suspension).

The state is rebuilt from events only (the `_when_*` mutators), never stored: the stored
events keep their JSON form (decimal strings, ISO dates); here amounts are Decimals and dates
are `date`s. An update puts a new record in the account's dict (`dataclasses.replace`, or the
record's own method on the ingest hot path), so a record handed out (e.g. by `open_invoices`)
never changes under its holder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from ledger.domain import events as ev
from ledger.domain.errors import Conflict, CurrencyMismatch
from ledger.domain.hashchain import GENESIS
from ledger.domain.money import fmt
from ledger.domain.policy import Action, Reinstatement
from ledger.domain.stream import ChainedStream, Meta

ZERO = Decimal(0)

SubscriptionStatus = Literal["active", "suspended"]
TicketStatus = Literal["open", "escalated", "resolved"]
# Money that settles invoices: a "payment" (cash), a "credit" note, or a credit "invoice"
# (an invoice whose refunds outweigh its charges).
SourceKind = Literal["payment", "credit", "invoice"]
# The kinds of settling money that came in as cash. Only cash is refundable (SPEC §3) or
# counts as collected (SPEC §6).
CASH_SOURCES: frozenset[SourceKind] = frozenset({"payment"})


@dataclass(frozen=True, slots=True)
class UnbilledCharge:
    """A posted charge not yet on an invoice (`ChargePosted`).

    Its amount and cost are kept as the event wrote them (decimal strings) and read as
    Decimals: an account holds every charge it ever posted (unbilled, then on its invoice), and
    the text costs half a Decimal (~50 against 104 bytes each).
    """

    amount_text: str  # in the customer's currency
    cost_text: str  # Microsoft's cost, in cost_currency (else the customer's currency)
    billing_period: str  # YYYY-MM
    occurred_at: datetime
    cost_currency: str | None = None  # Microsoft's billing currency when not the customer's

    @property
    def amount(self) -> Decimal:
        return Decimal(self.amount_text)

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_text)


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice (`InvoiceIssued`) or debit memo (`DebitMemoIssued`) and what is left to pay.

    A credit invoice (total < 0) has remainder 0: its value is a `MoneySource` instead.
    `total` is gross: `subtotal` (its charges) plus `tax` (SPEC §12). `remainder` is what is
    still open: total less what settled it (payments, credits) and what was written off.
    """

    total: Decimal
    remainder: Decimal
    due_date: date
    occurred_at: datetime
    tax: Decimal = ZERO
    written_off: Decimal = ZERO
    void: bool = False
    period: str | None = None  # billing period YYYY-MM (None: a debit memo)
    # The charges it billed (charge id -> charge): a void returns them to unbilled.
    charges: tuple[tuple[str, UnbilledCharge], ...] = ()

    @property
    def subtotal(self) -> Decimal:
        return self.total - self.tax

    def with_remainder(self, remainder: Decimal) -> Invoice:
        return Invoice(
            self.total, remainder, self.due_date, self.occurred_at, self.tax, self.written_off,
            self.void, self.period, self.charges,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MoneySource:
    """Money that can settle invoices: a payment, a credit note or a credit invoice."""

    kind: SourceKind
    id: str  # the payment id, credit id or invoice id
    amount: Decimal
    unapplied: Decimal  # not yet settling an invoice, refunded or reversed
    applied: Mapping[str, Decimal]  # invoice id -> what it settles of that invoice now
    refunded: Decimal  # paid back out to the customer (payments only)
    reversed: bool  # the payment was reversed (payments only)
    occurred_at: datetime

    @property
    def key(self) -> str:
        """Its key in `CustomerAccount.sources`: `<kind>:<id>`."""
        return source_key(self.kind, self.id)

    def application(self, invoice_id: str, amount: Decimal, currency: str) -> dict[str, str]:
        """The data of a `PaymentApplied` (or `PaymentUnapplied`) moving `amount` of this
        money onto (or off) `invoice_id`."""
        return {
            "source_type": self.kind,
            "source_id": self.id,
            "invoice_id": invoice_id,
            "amount": fmt(amount, currency),
            "currency": currency,
        }

    # The two updates of the ingest hot path call the constructor: dataclasses.replace costs
    # twice as much (it looks up the fields on every call).

    def applied_to(self, invoice_id: str, amount: Decimal) -> MoneySource:
        """This money after `amount` more of it settled `invoice_id` (`PaymentApplied`)."""
        applied = dict(self.applied)
        applied[invoice_id] = applied.get(invoice_id, ZERO) + amount
        return MoneySource(
            self.kind, self.id, self.amount, self.unapplied - amount, applied, self.refunded,
            self.reversed, self.occurred_at,
        )  # fmt: skip

    def taken_back_from(self, invoice_id: str, amount: Decimal) -> MoneySource:
        """This money after `amount` of what settled `invoice_id` was taken back
        (`PaymentUnapplied`)."""
        applied = dict(self.applied)
        applied[invoice_id] -= amount
        return MoneySource(
            self.kind, self.id, self.amount, self.unapplied + amount, applied, self.refunded,
            self.reversed, self.occurred_at,
        )  # fmt: skip


def _oldest_first(source: MoneySource) -> tuple[datetime, str, str]:
    """Sort key of settling money: business time (UTC), then kind and id."""
    return (source.occurred_at.astimezone(UTC), source.kind, source.id)


def source_key(kind: str, source_id: str) -> str:
    return f"{kind}:{source_id}"


@dataclass(frozen=True, slots=True)
class Suspension:
    """The customer's subscriptions are suspended (SPEC §4) since `since` (a UTC date, the
    earliest suspending run's), until the `reinstatement` rule is met."""

    since: date
    reinstatement: Reinstatement
    threshold: Decimal  # the overdue amount at or below which the rule is met


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def end_of(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def utc_day(instant: datetime) -> date:
    """The UTC calendar date of an instant (SPEC §2), whatever offset it was written with:
    `2026-02-16T08:30:00+11:00` is 2026-02-15. A naive datetime is taken as UTC."""
    if instant.tzinfo is None:
        return instant.date()
    return instant.astimezone(UTC).date()


class AccountState(ChainedStream):
    """What a customer's account holds, and what can be read from it without deciding.

    The commands live in the subclasses: ledger/domain/account.py (customer, charges,
    invoices, money), account_collections.py and account_support.py.
    """

    def __init__(self) -> None:
        self.customer_id = ""
        self.name = ""
        self.currency = ""
        self.payment_terms_days = 30
        self.collections_policy = "standard"
        self.email: str | None = None
        # Tax (SPEC §12): percent charged on invoices, unless exempt; the rest is for documents.
        self.tax_rate = ZERO
        self.tax_exempt = False
        self.tax_id: str | None = None
        self.country: str | None = None
        self.address: str | None = None
        self.head_hash = GENESIS
        self.registered_at: datetime | None = None
        # field -> (UTC business time, message id) of the fact that set its current value
        self.field_stamps: dict[str, tuple[datetime, str]] = {}
        # Idempotency: message id -> fingerprint, and kind -> business id -> fingerprint
        # (e.g. "charge" -> charge id): the business id's own string is the key, not a copy
        # of it with the kind in front (an account keeps one of each per charge it posted).
        self.seen_messages: dict[str, str] = {}
        self.facts: dict[str, dict[str, str]] = {}
        self.unbilled: dict[str, UnbilledCharge] = {}  # charge id -> charge
        self.invoices: dict[str, Invoice] = {}  # invoice (or debit memo) id -> invoice
        # Money that can settle invoices (payments, credit notes, credit invoices), by
        # `MoneySource.key`.
        self.sources: dict[str, MoneySource] = {}
        self.subscriptions: dict[str, SubscriptionStatus] = {}  # subscription id -> status
        # (invoice id, step index) -> the step's action, for each policy step fired
        self.fired_steps: dict[tuple[str, int], Action] = {}
        self.suspension: Suspension | None = None
        self.tickets: dict[str, TicketStatus] = {}  # ticket id -> status
        # payment id -> UTC date received: `last_payment_date` is their latest, whatever
        # order the payments arrived in (SPEC §6 is a function of the facts).
        self.payment_dates: dict[str, date] = {}
        # write-off id -> invoice id -> amount written off (SPEC §12), while not reversed
        self.write_offs: dict[str, dict[str, Decimal]] = {}
        self.reversed_write_offs: set[str] = set()
        self.tax_credited: dict[str, Decimal] = {}  # invoice id -> tax given back by credits

    # ---- idempotency ----------------------------------------------------------------------

    def is_duplicate(
        self, meta: Meta, kind: str | None = None, business_id: str | None = None
    ) -> bool:
        """True when this message (or this business fact: `kind` and `business_id`, e.g.
        "charge" and its charge id) was already applied identically.

        Raises Conflict when the same message id or business id comes with another payload.
        """
        seen: list[tuple[str, str]] = []
        if meta.message_id is not None and meta.message_id in self.seen_messages:
            seen.append((f"message_id {meta.message_id!r}", self.seen_messages[meta.message_id]))
        if kind is not None and business_id is not None:
            fingerprint = self.facts.get(kind, {}).get(business_id)
            if fingerprint is not None:
                seen.append((f"{kind} {business_id}", fingerprint))
        for what, fingerprint in seen:
            if fingerprint != meta.fingerprint:
                raise Conflict(f"{what} was already recorded with a different payload")
        return bool(seen)

    def _remember(
        self, event: ev.LedgerEvent, kind: str | None = None, business_id: str | None = None
    ) -> None:
        fingerprint = event.data.get("fingerprint")
        if event.message_id is not None and fingerprint is not None:
            self.seen_messages[event.message_id] = fingerprint
            if kind is not None and business_id is not None:
                facts = self.facts.get(kind)
                if facts is None:
                    facts = self.facts[kind] = {}
                facts[business_id] = fingerprint

    def _check_currency(self, payload: dict[str, Any]) -> None:
        currency = payload.get("currency")
        if currency is not None and currency != self.currency:
            raise CurrencyMismatch(
                f"currency: {currency} differs from the customer's billing currency "
                f"{self.currency}",
                field="currency",
            )

    # ---- money: what is owed and what is held ----------------------------------------------

    def sources_oldest_first(self) -> list[MoneySource]:
        """The settling money by business time (then kind and id): the order in which it
        settles invoices and is refunded is a function of the facts, not of the order in
        which the messages arrived."""
        return sorted(self.sources.values(), key=_oldest_first)

    def unapplied_oldest_first(self) -> list[MoneySource]:
        """`sources_oldest_first()` of the money with something left to apply (unapplied >
        0), the only money that can settle an invoice or be refunded: a payment's cost does
        not grow with the account's history of settled payments."""
        return sorted((s for s in self.sources.values() if s.unapplied > 0), key=_oldest_first)

    def unapplied_credit(self) -> Decimal:
        return sum((s.unapplied for s in self.sources.values()), ZERO)

    def refundable_credit(self) -> Decimal:
        """The cash-funded part of the unapplied credit (SPEC §3 `refund`): what is left of
        payments (net of what they settled, refunds and reversals). Credit from credit notes
        and credit invoices settles invoices but is never paid out in cash."""
        return sum((s.unapplied for s in self.sources.values() if s.kind in CASH_SOURCES), ZERO)

    def outstanding(self) -> Decimal:
        return sum((i.remainder for i in self.invoices.values()), ZERO)

    def open_invoices(self) -> list[tuple[str, Invoice]]:
        """Open invoices, oldest due date first."""
        return sorted(
            ((iid, inv) for iid, inv in self.invoices.items() if inv.remainder > 0),
            key=lambda item: (item[1].due_date, item[0]),
        )

    def overdue_on(self, on: date) -> Decimal:
        """The remainders of open invoices past due on `on` (due before that day)."""
        return sum((inv.remainder for _, inv in self.open_invoices() if inv.due_date < on), ZERO)

    def written_off_past_due(self, on: date) -> Decimal:
        """What was written off of invoices past due on `on`: bad debt, not paid, so it
        keeps a suspension in force (SPEC §12: a write-off never reinstates)."""
        return sum(
            (i.written_off for i in self.invoices.values() if not i.void and i.due_date < on),
            ZERO,
        )

    @property
    def last_payment_date(self) -> str | None:
        """The latest UTC date on which a payment was received (None: never paid)."""
        latest = max(self.payment_dates.values(), default=None)
        return None if latest is None else latest.isoformat()

    @property
    def status(self) -> str:
        return "suspended" if self.suspension is not None else "active"
