"""The collections run: apply each customer's collections policy as of a date (SPEC §4
"Collections"): dunning, suspension and reinstatement. Service mode is in schedule.py."""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.app.base import LedgerBase
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount
from ledger.domain.errors import UnknownPolicy


class CollectionsIncomplete(UnknownPolicy):
    """A collections run did every customer but these, whose policy does not exist.

    `skipped`: one UnknownPolicy per customer; `fired`: the events fired for the others
    (saved unless it was a dry run)."""

    def __init__(self, skipped: list[UnknownPolicy], fired: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e.message for e in skipped), field="collections_policy")
        self.skipped = skipped
        self.fired = fired


class CollectionsRuns(LedgerBase):
    def run_collections(self, as_of: date, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Apply each customer's policy as of `as_of`; returns the events it fired.

        A customer whose policy does not exist (any more) is never handled by another one:
        every other customer is done (and saved), then CollectionsIncomplete is raised,
        naming each skipped customer and its policy, with the events fired for the rest.
        """
        now = self.clock()
        skipped: list[UnknownPolicy] = []

        def decide(customer_id: str) -> tuple[CustomerAccount | None, list[dict[str, Any]]]:
            account = self.get(customer_id)
            as_of_state = self.replay_as_of(customer_id, as_of)
            if as_of_state is None:
                return None, []
            # The policy as of that day too: a later change of policy is not retroactive.
            policy = self.policies.get(as_of_state.collections_policy)
            if policy is None:
                skipped.append(
                    UnknownPolicy(
                        f"customer {customer_id}: collections_policy "
                        f"{as_of_state.collections_policy!r} is not defined (skipped; defined: "
                        f"{', '.join(sorted(self.policies))})",
                        field="collections_policy",
                    )
                )
                return None, []
            if not account.run_collections(policy, as_of, now, as_of_state):
                return None, []
            fired = [
                {"customer_id": customer_id, "event_type": type(e).__name__, **e.data}
                for e in account.pending_events
                if isinstance(e, ev.LedgerEvent)
            ]
            return account, fired

        done = self._for_each_customer(decide, save=not dry_run, what="collections run")
        if skipped:
            # decide() may run twice for a chunk (a retry): name each customer once.
            unique = list({error.message: error for error in skipped}.values())
            raise CollectionsIncomplete(unique, done)
        return done
