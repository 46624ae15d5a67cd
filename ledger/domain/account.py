"""The CustomerAccount aggregate: one stream per customer; it decides, its events record.

Commands validate against the current state and trigger events; the `_when_*` mutators only
change state, so replaying any prefix of a stream (as-of views) rebuilds the state it had.
Amounts in `data` are decimal strings; in state they are Decimals.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger.domain import events as ev
from ledger.domain.errors import (
    Conflict,
    CurrencyMismatch,
    InsufficientCredit,
    InvalidState,
    UnknownPolicy,
    UnknownReference,
)
from ledger.domain.hashchain import GENESIS
from ledger.domain.ids import normalize_id
from ledger.domain.money import fmt
from ledger.domain.policy import CollectionsPolicy, OverdueInvoice, plan_actions
from ledger.domain.stream import ChainedStream, Meta

ZERO = Decimal(0)
# The kinds of settling money that came in as cash (the others: "credit" notes, credit
# "invoice"s). Only cash is refundable (SPEC §3) or counts as collected (SPEC §6).
CASH_SOURCES = frozenset({"payment"})


def account_id(customer_id: str) -> UUID:
    """The stream id of a customer: stable, derived from the Partner Center customer id in
    the ledger's spelling (a GUID in lower case, SPEC §2), so either case finds one stream.
    A stream registered before that rule under a GUID with upper-case letters has another
    id: `LedgerApplication.stream_id` finds it."""
    return uuid5(NAMESPACE_URL, f"csp-ledger:customer:{normalize_id(customer_id)}")


DEFAULT_POLICY = "standard"
UPDATABLE_FIELDS = ("name", "payment_terms_days", "collections_policy", "email")


def _stamp(event: ev.LedgerEvent) -> tuple[datetime, str]:
    """When a fact happened, ordered: its UTC business time, then its message id (so two
    facts of the same instant are ordered by their content, not by their arrival)."""
    return (event.occurred_at.astimezone(UTC), event.message_id or "")


def check_policy(name: str, known_policies: Collection[str]) -> None:
    """Refuse a collections policy that does not exist: it is never replaced by another
    (a typo or a policy file not loaded must not quietly become `standard`, SPEC §3/§4)."""
    if name not in known_policies:
        known = ", ".join(sorted(known_policies)) or "none"
        raise UnknownPolicy(
            f"collections_policy: {name!r} is not a defined collections policy (defined: {known})",
            field="collections_policy",
        )


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


def _cost_currency(charge: dict[str, Any], currency: str) -> dict[str, str]:
    """`cost_currency` for an invoice's charge line, only when it is not the customer's."""
    other = charge.get("cost_currency")
    return {"cost_currency": other} if other and other != currency else {}


class CustomerAccount(ChainedStream):
    # ---- creation -------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        customer_id: str,
        payload: dict[str, Any],
        meta: Meta,
        *,
        known_policies: Collection[str],
    ) -> CustomerAccount:
        """Start the customer's stream. `known_policies`: the names of the collections
        policies that exist (the caller loads the policy file). Raises UnknownPolicy."""
        check_policy(payload.get("collections_policy", DEFAULT_POLICY), known_policies)
        data = dict(payload, customer_id=customer_id)
        if meta.message_id is not None:
            data["fingerprint"] = meta.fingerprint
        return cls._start(ev.CustomerRegistered, account_id(customer_id), customer_id, data, meta)

    def __init__(self) -> None:
        self.customer_id = ""
        self.name = ""
        self.currency = ""
        self.payment_terms_days = 30
        self.collections_policy = "standard"
        self.email: str | None = None
        self.head_hash = GENESIS
        self.registered_at: datetime | None = None
        # field -> (UTC business time, message id) of the fact that set its current value
        self.field_stamps: dict[str, tuple[datetime, str]] = {}
        # Idempotency: message id -> fingerprint, and "kind:business id" -> fingerprint.
        self.seen_messages: dict[str, str] = {}
        self.facts: dict[str, str] = {}
        self.unbilled: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        # Money that can settle invoices, oldest first: payments, credit notes, credit invoices.
        self.sources: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, str] = {}
        self.fired_steps: dict[str, str] = {}
        self.suspension: dict[str, Any] | None = None
        self.tickets: dict[str, str] = {}
        # payment id -> UTC date received: `last_payment_date` is their latest, whatever
        # order the payments arrived in (SPEC §6 is a function of the facts).
        self.payment_dates: dict[str, str] = {}

    # ---- idempotency ----------------------------------------------------------------------

    def is_duplicate(self, meta: Meta, fact_key: str | None) -> bool:
        """True when this message (or this business fact) was already applied identically.

        Raises Conflict when the same message id or business id comes with another payload.
        """
        seen: list[tuple[str, str]] = []
        if meta.message_id is not None and meta.message_id in self.seen_messages:
            seen.append((f"message_id {meta.message_id!r}", self.seen_messages[meta.message_id]))
        if fact_key is not None and fact_key in self.facts:
            seen.append((fact_key.replace(":", " ", 1), self.facts[fact_key]))
        for what, fingerprint in seen:
            if fingerprint != meta.fingerprint:
                raise Conflict(f"{what} was already recorded with a different payload")
        return bool(seen)

    def _remember(self, event: ev.LedgerEvent, fact_key: str | None = None) -> None:
        fingerprint = event.data.get("fingerprint")
        if event.message_id is not None and fingerprint is not None:
            self.seen_messages[event.message_id] = fingerprint
            if fact_key is not None:
                self.facts[fact_key] = fingerprint

    def _check_currency(self, payload: dict[str, Any]) -> None:
        currency = payload.get("currency")
        if currency is not None and currency != self.currency:
            raise CurrencyMismatch(
                f"currency: {currency} differs from the customer's billing currency "
                f"{self.currency}",
                field="currency",
            )

    # ---- customer -------------------------------------------------------------------------

    def update(
        self, payload: dict[str, Any], meta: Meta, *, known_policies: Collection[str]
    ) -> bool:
        """Change the customer's details. Raises Conflict, UnknownPolicy (a
        `collections_policy` not among `known_policies`)."""
        if self.is_duplicate(meta, None):
            return False
        if payload.get("collections_policy") is not None:
            check_policy(payload["collections_policy"], known_policies)
        self._emit(ev.CustomerUpdated, dict(payload), meta, caused_by_message=True)
        return True

    def _when_CustomerRegistered(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.customer_id = data["customer_id"]
        self.name = data["name"]
        self.currency = data["currency"]
        self.payment_terms_days = int(data.get("payment_terms_days", 30))
        self.collections_policy = data.get("collections_policy", "standard")
        self.email = data.get("email")
        self.registered_at = event.occurred_at
        self._remember(event, "customer:registration")

    def _when_CustomerUpdated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        # Each field holds its latest update by business time (any update overrides the
        # registration, which always comes first): an older update that arrives after a
        # newer one changes nothing (the same updates in any order, the same state).
        stamp = _stamp(event)
        for field in UPDATABLE_FIELDS:
            if data.get(field) is not None and stamp >= self.field_stamps.get(field, stamp):
                setattr(self, field, data[field])
                self.field_stamps[field] = stamp
        self.payment_terms_days = int(self.payment_terms_days)
        self._remember(event)

    # ---- charges and invoices -------------------------------------------------------------

    def post_charge(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"charge:{payload['charge_id']}"):
            return False
        self._check_currency(payload)
        self._emit(ev.ChargePosted, dict(payload), meta, caused_by_message=True)
        return True

    def _when_ChargePosted(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.unbilled[data["charge_id"]] = {
            "amount": Decimal(data["amount"]),
            "cost": Decimal(data["cost"]),
            "billing_period": data["billing_period"],
            "occurred_at": event.occurred_at,
            "cost_currency": data.get("cost_currency"),  # Microsoft's, when not the customer's
        }
        # Charges stored before SPEC §2 may spell a GUID in upper case: one subscription.
        self.subscriptions.setdefault(normalize_id(data["subscription_id"]), "active")
        self._remember(event, f"charge:{data['charge_id']}")

    def issue_invoice(self, period: str, invoice_date: date, recorded_at: datetime) -> bool:
        """Put every unbilled charge of `period` or earlier on one invoice. Idempotent."""
        invoice_id = f"INV-{self.customer_id}-{period}"
        if invoice_id in self.invoices:
            return False
        charge_ids = sorted(
            cid for cid, c in self.unbilled.items() if c["billing_period"] <= period
        )
        if not charge_ids:
            return False
        total = sum((self.unbilled[c]["amount"] for c in charge_ids), ZERO)
        occurred = max(
            [start_of(invoice_date)] + [self.unbilled[c]["occurred_at"] for c in charge_ids]
        )
        due = invoice_date + timedelta(days=self.payment_terms_days)
        meta = Meta(occurred_at=occurred, recorded_at=recorded_at)
        self._emit(
            ev.InvoiceIssued,
            {
                "invoice_id": invoice_id,
                "period": period,
                "invoice_date": invoice_date.isoformat(),
                "due_date": due.isoformat(),
                "total": fmt(total, self.currency),
                "currency": self.currency,
                "charge_ids": charge_ids,
                "charges": [
                    {
                        "charge_id": c,
                        "amount": fmt(self.unbilled[c]["amount"], self.currency),
                        "cost": fmt(self.unbilled[c]["cost"],
                                    self.unbilled[c].get("cost_currency") or self.currency),
                        "billing_period": self.unbilled[c]["billing_period"],
                        **_cost_currency(self.unbilled[c], self.currency),
                    }
                    for c in charge_ids
                ],
            },
            meta,
        )
        self._settle(meta)
        # A credit invoice (refunds outweigh charges) settles older invoices like a credit note.
        self._reinstate_if_rule_met(meta)
        return True

    def _when_InvoiceIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        total = Decimal(data["total"])
        for charge_id in data["charge_ids"]:
            self.unbilled.pop(charge_id, None)
        self._open_invoice(data["invoice_id"], data["due_date"], total, event.occurred_at)
        if total < 0:
            # A credit invoice (refunds outweigh charges): its value is credit to apply.
            self._add_source("invoice", data["invoice_id"], -total, event.occurred_at)

    def _open_invoice(self, invoice_id: str, due: str, total: Decimal, at: datetime) -> None:
        self.invoices[invoice_id] = {
            "total": total,
            "remainder": max(total, ZERO),
            "due_date": due,
            "occurred_at": at,
        }

    def _when_DebitMemoIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._open_invoice(
            data["invoice_id"], data["due_date"], Decimal(data["total"]), event.occurred_at
        )

    # ---- payments, credits, refunds ------------------------------------------------------

    def receive_payment(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"payment:{payload['payment_id']}"):
            return False
        self._check_currency(payload)
        self._emit(ev.PaymentReceived, dict(payload), meta, caused_by_message=True)
        self._settle(meta, preferred_invoice=payload.get("invoice_id"))
        self._reinstate_if_rule_met(meta)
        return True

    def _when_PaymentReceived(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._add_source("payment", data["payment_id"], Decimal(data["amount"]), event.occurred_at)
        self.payment_dates[data["payment_id"]] = utc_day(event.occurred_at).isoformat()
        self._remember(event, f"payment:{data['payment_id']}")

    def issue_credit_note(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"credit:{payload['credit_id']}"):
            return False
        self._check_currency(payload)
        self._emit(ev.CreditNoteIssued, dict(payload), meta, caused_by_message=True)
        self._settle(meta, preferred_invoice=payload.get("invoice_id"))
        self._reinstate_if_rule_met(meta)
        return True

    def _when_CreditNoteIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._add_source("credit", data["credit_id"], Decimal(data["amount"]), event.occurred_at)
        self._remember(event, f"credit:{data['credit_id']}")

    def _add_source(self, kind: str, source_id: str, amount: Decimal, at: datetime) -> None:
        self.sources[f"{kind}:{source_id}"] = {
            "kind": kind,
            "id": source_id,
            "amount": amount,
            "unapplied": amount,
            "applied": {},
            "refunded": ZERO,
            "reversed": False,
            "occurred_at": at,
        }

    def sources_oldest_first(self) -> list[dict[str, Any]]:
        """The settling money by business time (then kind and id): the order in which it
        settles invoices and is refunded is a function of the facts, not of the order in
        which the messages arrived."""
        return sorted(
            self.sources.values(),
            key=lambda s: (s["occurred_at"].astimezone(UTC), s["kind"], s["id"]),
        )

    def unapplied_credit(self) -> Decimal:
        return sum((s["unapplied"] for s in self.sources.values()), ZERO)

    def refundable_credit(self) -> Decimal:
        """The cash-funded part of the unapplied credit (SPEC §3 `refund`): what is left of
        payments (net of what they settled, refunds and reversals). Credit from credit notes
        and credit invoices settles invoices but is never paid out in cash."""
        return sum(
            (s["unapplied"] for s in self.sources.values() if s["kind"] in CASH_SOURCES), ZERO
        )

    def outstanding(self) -> Decimal:
        return sum((i["remainder"] for i in self.invoices.values()), ZERO)

    def open_invoices(self) -> list[tuple[str, dict[str, Any]]]:
        """Open invoices, oldest due date first."""
        return sorted(
            ((iid, inv) for iid, inv in self.invoices.items() if inv["remainder"] > 0),
            key=lambda item: (item[1]["due_date"], item[0]),
        )

    def _settle(self, meta: Meta, preferred_invoice: str | None = None) -> None:
        """Apply unapplied money (oldest source first) to open invoices (named one first,
        then the oldest due): afterwards there are open invoices or credit, never both."""
        for source in self.sources_oldest_first():
            targets = self.open_invoices()
            targets.sort(key=lambda item: item[0] != preferred_invoice)
            for invoice_id, invoice in targets:
                amount = min(source["unapplied"], invoice["remainder"])
                if amount <= 0:
                    break
                occurred = max(meta.occurred_at, invoice["occurred_at"], source["occurred_at"])
                self._emit(
                    ev.PaymentApplied,
                    {
                        "source_type": source["kind"],
                        "source_id": source["id"],
                        "invoice_id": invoice_id,
                        "amount": fmt(amount, self.currency),
                        "currency": self.currency,
                    },
                    meta,
                    occurred_at=occurred,
                )

    def _when_PaymentApplied(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount = Decimal(data["amount"])
        source = self.sources[f"{data['source_type']}:{data['source_id']}"]
        source["unapplied"] -= amount
        applied = source["applied"]
        applied[data["invoice_id"]] = applied.get(data["invoice_id"], ZERO) + amount
        self.invoices[data["invoice_id"]]["remainder"] -= amount

    def reverse_payment(self, payload: dict[str, Any], meta: Meta) -> bool:
        payment_id = payload["payment_id"]
        if self.is_duplicate(meta, f"reversal:{payment_id}"):
            return False
        source = self.sources.get(f"payment:{payment_id}")
        if source is None:
            raise UnknownReference(
                f"payment_id: {payment_id!r} is not a payment of this customer",
                field="payment_id",
            )
        if source["reversed"]:
            raise InvalidState(
                f"payment_id: {payment_id!r} is already reversed", field="payment_id"
            )
        occurred = max(meta.occurred_at, source["occurred_at"])
        for invoice_id, amount in sorted(source["applied"].items()):
            if amount > 0:
                self._emit(
                    ev.PaymentUnapplied,
                    {
                        "source_type": "payment",
                        "source_id": payment_id,
                        "invoice_id": invoice_id,
                        "amount": fmt(amount, self.currency),
                        "currency": self.currency,
                    },
                    meta,
                    occurred_at=max(occurred, self.invoices[invoice_id]["occurred_at"]),
                )
        refunded_out = source["refunded"]
        self._emit(
            ev.PaymentReversed,
            dict(
                payload,
                amount=fmt(source["amount"], self.currency),
                currency=self.currency,
                unapplied_removed=fmt(source["amount"] - refunded_out, self.currency),
            ),
            meta,
            occurred_at=occurred,
            caused_by_message=True,
        )
        if refunded_out > 0:
            # The money was already paid back out as a refund: the customer owes it again.
            self._emit(
                ev.DebitMemoIssued,
                {
                    "invoice_id": f"DM-{payment_id}",
                    "due_date": utc_day(occurred).isoformat(),
                    "total": fmt(refunded_out, self.currency),
                    "currency": self.currency,
                    "payment_id": payment_id,
                },
                meta,
                occurred_at=occurred,
            )
        self._settle(Meta(occurred_at=occurred, recorded_at=meta.recorded_at))
        return True

    def _when_PaymentUnapplied(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        amount = Decimal(data["amount"])
        source = self.sources[f"{data['source_type']}:{data['source_id']}"]
        source["unapplied"] += amount
        source["applied"][data["invoice_id"]] -= amount
        self.invoices[data["invoice_id"]]["remainder"] += amount

    def _when_PaymentReversed(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        source = self.sources[f"payment:{data['payment_id']}"]
        source["unapplied"] = ZERO
        source["reversed"] = True
        self._remember(event, f"reversal:{data['payment_id']}")

    def issue_refund(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"refund:{payload['refund_id']}"):
            return False
        self._check_currency(payload)
        amount = Decimal(payload["amount"])
        available = self.refundable_credit()
        if amount > available:
            other = self.unapplied_credit() - available
            held = (
                f" ({fmt(other, self.currency)} of credit from credit notes or credit invoices"
                " is not refundable)"
                if other > 0
                else ""
            )
            raise InsufficientCredit(
                f"amount: refund of {fmt(amount, self.currency)} exceeds the customer's "
                f"refundable (cash) credit of {fmt(available, self.currency)}{held}",
                field="amount",
            )
        drawn, left, occurred = [], amount, meta.occurred_at
        for source in self.sources_oldest_first():
            if source["kind"] not in CASH_SOURCES:
                continue
            take = min(left, source["unapplied"])
            if take > 0:
                drawn.append(
                    {"source_type": source["kind"], "source_id": source["id"],
                     "amount": fmt(take, self.currency)}
                )  # fmt: skip
                left -= take
                # Never before the money it pays out, or an as-of view shows negative credit.
                occurred = max(occurred, source["occurred_at"])
        self._emit(
            ev.RefundIssued, dict(payload, drawn=drawn), meta, occurred_at=occurred,
            caused_by_message=True,
        )  # fmt: skip
        return True

    def _when_RefundIssued(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        for part in data["drawn"]:
            source = self.sources[f"{part['source_type']}:{part['source_id']}"]
            source["unapplied"] -= Decimal(part["amount"])
            source["refunded"] += Decimal(part["amount"])
        self._remember(event, f"refund:{data['refund_id']}")

    # ---- collections ----------------------------------------------------------------------

    def open_items(self) -> list[OverdueInvoice]:
        """Open invoices as the collections policy sees them."""
        return [
            OverdueInvoice(iid, date.fromisoformat(inv["due_date"]), inv["remainder"])
            for iid, inv in self.open_invoices()
        ]

    def fired_pairs(self) -> set[tuple[str, int]]:
        """The (invoice id, step index) pairs fired (and not re-armed) so far."""
        return {(key.rsplit("|", 1)[0], int(key.rsplit("|", 1)[1])) for key in self.fired_steps}

    def run_collections(
        self,
        policy: CollectionsPolicy,
        as_of: date,
        recorded_at: datetime,
        as_of_state: CustomerAccount,
    ) -> int:
        """Fire each policy step that is due for each overdue invoice, once.

        `as_of_state` is this account as it stood at the end of `as_of` (the caller replays
        the stream up to that day), so a run never looks at later events: the open invoices
        and the subscriptions to suspend are those of that day. A step counts as fired when it
        fired in this stream (any date) or in the state of that day: so re-running any date,
        even a past one after a reinstatement re-armed the suspend step (see
        `_when_SubscriptionReinstated`), changes nothing. Returns events emitted.
        """
        fired_pairs = self.fired_pairs() | as_of_state.fired_pairs()
        planned = plan_actions(policy, as_of_state.open_items(), fired_pairs, as_of)
        meta = Meta(occurred_at=start_of(as_of), recorded_at=recorded_at)
        before = self.version
        for action in planned:
            self._emit(
                ev.DunningNoticeSent,
                {
                    "policy": policy.name,
                    "step": action.step_index,
                    "action": action.step.action,
                    "invoice_id": action.invoice_id,
                    "amount": fmt(action.amount, self.currency),
                    "days_past_due": action.days_past_due,
                    "as_of": as_of.isoformat(),
                },
                meta,
            )
            if action.step.action == "suspend":
                for subscription_id in sorted(as_of_state.subscriptions):
                    if self.subscriptions.get(subscription_id) == "active":
                        self._emit(
                            ev.SubscriptionSuspended,
                            {
                                "subscription_id": subscription_id,
                                "policy": policy.name,
                                "step": action.step_index,
                                "invoice_id": action.invoice_id,
                                "reinstatement": policy.reinstatement,
                                "threshold": fmt(policy.reinstatement_threshold(), self.currency),
                            },
                            meta,
                        )
        arrived = max((s["occurred_at"] for s in self.sources.values()), default=None)
        if self.suspension is not None and arrived is not None and arrived > end_of(as_of):
            # A run for a past date can suspend a customer whose money arrived after that date
            # and is already recorded: that payment found nothing to reinstate, so the rule is
            # checked here as it stood when the last money arrived (a check on `as_of` itself
            # would count as past due only what was due by then).
            self._reinstate_if_rule_met(Meta(occurred_at=arrived, recorded_at=recorded_at))
        elif self.suspension is not None:
            # A suspension the money already satisfied (e.g. recorded before paid_in_full
            # meant "nothing past due") is lifted by the next run: the rule is a fact of
            # the day, not only of the payment that met it.
            self._reinstate_if_rule_met(Meta(occurred_at=start_of(as_of), recorded_at=recorded_at))
        return self.version - before

    def _when_DunningNoticeSent(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.fired_steps[f"{data['invoice_id']}|{data['step']}"] = data["action"]

    def _when_SubscriptionSuspended(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.subscriptions[data["subscription_id"]] = "suspended"
        day = utc_day(event.occurred_at).isoformat()
        if self.suspension is None:
            self.suspension = {
                "since": day,
                "reinstatement": data["reinstatement"],
                "threshold": data["threshold"],
            }
        elif day < self.suspension["since"]:
            # A run for an earlier date recorded later: the suspension began on the earliest
            # day, whatever order the runs came in.
            self.suspension["since"] = day

    def overdue_on(self, on: date) -> Decimal:
        """The remainders of open invoices past due on `on` (due before that day)."""
        day = on.isoformat()
        return sum(
            (inv["remainder"] for _, inv in self.open_invoices() if inv["due_date"] < day), ZERO
        )

    def _reinstatement_met(self, on: date) -> bool:
        """SPEC §4: `paid_in_full` = nothing past due remains on `on` (invoices not yet due
        do not keep a customer suspended); `below_min_amount` = what is past due is at or
        below the suspending step's min_amount."""
        assert self.suspension is not None
        overdue = self.overdue_on(on)
        if self.suspension["reinstatement"] == "paid_in_full":
            return overdue <= 0
        return overdue <= Decimal(self.suspension["threshold"])

    def _reinstate_if_rule_met(self, meta: Meta) -> None:
        """Reinstate every suspended subscription when the suspension's rule is met.

        The rule is checked as of the money's date, but never before the suspension began:
        money dated earlier (recorded late) is judged against what was past due when the
        customer was suspended, and the reinstatement is dated no earlier than the suspension.
        """
        if self.suspension is None:
            return
        occurred = max(meta.occurred_at, start_of(date.fromisoformat(self.suspension["since"])))
        if not self._reinstatement_met(utc_day(occurred)):
            return
        rule = self.suspension["reinstatement"]
        for subscription_id in sorted(self.subscriptions):
            if self.subscriptions[subscription_id] == "suspended":
                self._emit(
                    ev.SubscriptionReinstated,
                    {"subscription_id": subscription_id, "rule": rule},
                    meta,
                    occurred_at=occurred,
                )

    def _when_SubscriptionReinstated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        """A reinstatement ends the suspension and re-arms the `suspend` steps.

        Each step fires once per invoice, but a suspension is lifted when the rule is met
        (the money came in). When the customer falls behind again (a reversal reopens the
        invoice, or a residual grows past min_amount again), collections must be able to
        suspend again: the next run fires the suspend step again for every invoice then
        past due (a new `DunningNoticeSent` for the step and `SubscriptionSuspended`). The
        reminder and the final notice are not re-armed: the customer already had them.
        """
        self.subscriptions[data["subscription_id"]] = "active"
        if "suspended" not in self.subscriptions.values():
            self.suspension = None
            for key, action in list(self.fired_steps.items()):
                if action == "suspend":
                    del self.fired_steps[key]

    @property
    def last_payment_date(self) -> str | None:
        """The latest UTC date on which a payment was received (None: never paid)."""
        return max(self.payment_dates.values(), default=None)

    @property
    def status(self) -> str:
        return "suspended" if self.suspension is not None else "active"

    # ---- support --------------------------------------------------------------------------

    def _known_ticket(self, ticket_id: str) -> str:
        if ticket_id not in self.tickets:
            raise UnknownReference(
                f"ticket_id: {ticket_id!r} is not a ticket of this customer", field="ticket_id"
            )
        return self.tickets[ticket_id]

    def open_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"ticket:{payload['ticket_id']}"):
            return False
        self._emit(ev.SupportTicketOpened, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketOpened(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "open"
        self._remember(event, f"ticket:{data['ticket_id']}")

    def log_interaction(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, None):
            return False
        self._known_ticket(payload["ticket_id"])
        self._emit(ev.SupportInteractionLogged, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportInteractionLogged(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self._remember(event)

    def escalate_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, None):
            return False
        if self._known_ticket(payload["ticket_id"]) == "resolved":
            raise InvalidState(
                f"ticket_id: {payload['ticket_id']!r} is resolved; open a new ticket",
                field="ticket_id",
            )
        self._emit(ev.SupportTicketEscalated, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketEscalated(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "escalated"
        self._remember(event)

    def resolve_ticket(self, payload: dict[str, Any], meta: Meta) -> bool:
        if self.is_duplicate(meta, f"resolution:{payload['ticket_id']}"):
            return False
        if self._known_ticket(payload["ticket_id"]) == "resolved":
            raise InvalidState(
                f"ticket_id: {payload['ticket_id']!r} is already resolved", field="ticket_id"
            )
        self._emit(ev.SupportTicketResolved, dict(payload), meta, caused_by_message=True)
        return True

    def _when_SupportTicketResolved(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.tickets[data["ticket_id"]] = "resolved"
        self._remember(event, f"resolution:{data['ticket_id']}")
