"""Collections on a customer's account (SPEC §4): dunning steps, suspension, reinstatement.

`CustomerAccount` (ledger/domain/account.py) inherits these commands and mutators; the
settling of money that makes a reinstatement's rule met is in account.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.domain import events as ev
from ledger.domain.account_state import (
    AccountState,
    Suspension,
    end_of,
    start_of,
    utc_day,
)
from ledger.domain.money import fmt
from ledger.domain.policy import CollectionsPolicy, OverdueInvoice, plan_actions
from ledger.domain.stream import Meta


class Collections(AccountState):
    def open_items(self) -> list[OverdueInvoice]:
        """Open invoices as the collections policy sees them."""
        return [
            OverdueInvoice(iid, inv.due_date, inv.remainder) for iid, inv in self.open_invoices()
        ]

    def fired_pairs(self) -> set[tuple[str, int]]:
        """The (invoice id, step index) pairs fired (and not re-armed) so far."""
        return set(self.fired_steps)

    def run_collections(
        self,
        policy: CollectionsPolicy,
        as_of: date,
        recorded_at: datetime,
        as_of_state: Collections,
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
        arrived = max((s.occurred_at for s in self.sources.values()), default=None)
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
        self.fired_steps[data["invoice_id"], int(data["step"])] = data["action"]

    def _when_SubscriptionSuspended(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        self.subscriptions[data["subscription_id"]] = "suspended"
        day = utc_day(event.occurred_at)
        if self.suspension is None:
            self.suspension = Suspension(
                since=day,
                reinstatement=data["reinstatement"],
                threshold=Decimal(data["threshold"]),
            )
        elif day < self.suspension.since:
            # A run for an earlier date recorded later: the suspension began on the earliest
            # day, whatever order the runs came in.
            self.suspension = replace(self.suspension, since=day)

    def _reinstatement_met(self, on: date) -> bool:
        """SPEC §4: `paid_in_full` = nothing past due remains on `on` (invoices not yet due
        do not keep a customer suspended); `below_min_amount` = what is past due is at or
        below the suspending step's min_amount."""
        assert self.suspension is not None
        overdue = self.overdue_on(on) + self.written_off_past_due(on)
        if self.suspension.reinstatement == "paid_in_full":
            return overdue <= 0
        return overdue <= self.suspension.threshold

    def _reinstate_if_rule_met(self, meta: Meta) -> None:
        """Reinstate every suspended subscription when the suspension's rule is met.

        The rule is checked as of the money's date, but never before the suspension began:
        money dated earlier (recorded late) is judged against what was past due when the
        customer was suspended, and the reinstatement is dated no earlier than the suspension.
        """
        if self.suspension is None:
            return
        occurred = max(meta.occurred_at, start_of(self.suspension.since))
        if not self._reinstatement_met(utc_day(occurred)):
            return
        rule = self.suspension.reinstatement
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
