"""Collections properties on random histories (issue 6): charges, monthly invoice runs,
partial payments, credit notes and payment reversals over four months, for customers with
14/30/45 days' terms under `standard` (reinstate when paid in full) or `grace` (reinstate at
no more than 10.00 past due).

The same history goes into two ledgers: one runs collections every day, the other only on the
last day. In both:
- no customer is ever suspended (no suspend step fires) unless MORE than the step's
  min_amount (10.00) is past due on the run's day: checked on the `balances` view as it stood
  that day (the projection, not the aggregate that decided);
- re-running a day right after its run stores nothing, nor does re-running any past day
  at the end (daily ledger);
- a customer is never left suspended while the reinstatement rule is met;
- a customer suspended by the single last-day run is suspended in the daily ledger too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.app.application import LedgerApplication
from ledger.app.views import compute_view
from ledger.domain.policy import STANDARD_POLICY, CollectionsPolicy, overdue_total
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    charge,
    credit_note,
    customer_registered,
    msg,
    payment,
    payment_reversed,
)

START = date(2025, 1, 1)
DAYS = 125  # to 2025-05-05: January invoices reach 60+ days past due with 45 days' terms
LAST = START + timedelta(days=DAYS - 1)
MIN_AMOUNT = Decimal("10.00")  # the suspend step's min_amount in both policies
GRACE = CollectionsPolicy("grace", STANDARD_POLICY.steps, "below_min_amount")
POLICIES = {"standard": STANDARD_POLICY, "grace": GRACE}
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)

# Amounts around the 10.00 threshold, and larger ones.
CHARGES = ["0.01", "5.00", "9.99", "10.00", "10.01", "20.00", "55.50", "100.00"]
PAYMENTS = ["0.01", "5.00", "10.00", "19.99", "30.00", "45.00", "89.99", "100.00"]


@dataclass(frozen=True)
class Customer:
    customer_id: str
    terms: int
    policy: str


Op = tuple[str, str, int, int]  # kind, customer id, sequence number, pick


@dataclass
class History:
    customers: list[Customer]
    # day offset -> that day's operations, in order. "settle" pays everything still owed and
    # "to_min" pays down to exactly 10.00 past due; those and "reverse" (of one of the
    # customer's payments) are turned into messages when their day comes, from the ledger's
    # state then (the same in both ledgers: collections never move money).
    days: dict[int, list[Op]] = field(default_factory=dict)


@st.composite
def histories(draw: st.DrawFn) -> History:
    count = draw(st.integers(min_value=1, max_value=2))
    customers = [
        Customer(
            f"cust-{n}",
            draw(st.sampled_from([14, 30, 45])),
            draw(st.sampled_from(["standard", "grace"])),
        )
        for n in range(count)
    ]
    history = History(customers)
    # Every customer buys something in January (so there is an invoice to chase), then
    # anything happens on any day: more charges, payments, credit notes, reversals.
    january = [
        (draw(st.integers(min_value=0, max_value=27)), who, "charge", draw(st.integers(3, 7)))
        for who in range(count)
    ]
    kinds = ["charge", "pay", "credit", "settle", "to_min", "reverse", "reverse"]
    ops = list(january)
    for _ in range(draw(st.integers(min_value=0, max_value=16))):
        kind = draw(st.sampled_from(kinds))
        # Half the settling and reversing once suspensions happen (30 days past due is day
        # 75, 91 or 106 for January with 14, 30 or 45 days terms).
        low = 75 if kind in ("settle", "to_min", "reverse") and draw(st.booleans()) else 0
        ops.append((
            draw(st.integers(min_value=low, max_value=DAYS - 1)),
            draw(st.integers(min_value=0, max_value=count - 1)),
            kind,
            draw(st.integers(min_value=0, max_value=7)),
        ))  # fmt: skip
    for who in range(count):
        # Often: pay everything (or down to 10.00) late, after a suspension, and sometimes
        # have that payment reversed a few days later (re-suspension by the next run).
        if draw(st.booleans()):
            late = draw(st.integers(min_value=95, max_value=112))
            ops.append((late, who, draw(st.sampled_from(["settle", "to_min"])), 0))
            if draw(st.booleans()):
                ops.append((late + draw(st.integers(1, 8)), who, "reverse_last", 0))
    for n, (offset, who, kind, pick) in enumerate(sorted(ops, key=lambda op: op[0])):
        history.days.setdefault(offset, []).append((kind, customers[who].customer_id, n, pick))
    return history


class Ledger:
    """One in-memory ledger fed the history day by day."""

    def __init__(self, history: History) -> None:
        self.app = LedgerApplication(
            eventsourcing_env("memory://"), clock=lambda: RECORDED, policies=dict(POLICIES)
        )
        self.history = history
        self.payments: dict[str, list[str]] = {c.customer_id: [] for c in history.customers}
        self.apply(
            customer_registered(
                c.customer_id, payment_terms_days=c.terms, collections_policy=c.policy,
                occurred_at="2024-12-20T09:00:00Z",
            )
            for c in history.customers
        )  # fmt: skip

    def message(self, op: Op, day: date) -> str | None:
        kind, cid, n, pick = op
        at = f"{day.isoformat()}T10:00:00Z"
        if kind == "charge":
            return charge(
                cid, f"CH-{n}", CHARGES[pick], billing_period=day.strftime("%Y-%m"),
                subscription_id=f"sub-{cid}-{pick % 2}", occurred_at=at,
            )  # fmt: skip
        if kind == "credit":
            return credit_note(cid, f"CN-{n}", PAYMENTS[pick % 4], occurred_at=at)
        if kind in ("reverse", "reverse_last"):
            if not self.payments[cid]:
                return None
            which = -1 if kind == "reverse_last" else pick % len(self.payments[cid])
            paid = self.payments[cid].pop(which)
            return payment_reversed(cid, paid, occurred_at=at)
        account = self.app.get(cid)
        if kind == "pay":
            amount = Decimal(PAYMENTS[pick])
        elif kind == "settle":
            amount = account.outstanding() - account.unapplied_credit()
        else:  # to_min: leave exactly 10.00 past due
            amount = overdue_total(account.open_items(), day) - MIN_AMOUNT
        if amount <= 0:
            return None
        self.payments[cid].append(f"P-{n}")
        return payment(cid, f"P-{n}", f"{amount:.2f}", occurred_at=at)

    def apply(self, raws: Any) -> None:
        outcomes = self.app.handle_batch([msg(r) for r in raws]).outcomes
        assert all(o.status == "applied" for o in outcomes), outcomes

    def day(self, offset: int) -> date:
        """The day's business: the monthly invoice run on the 1st, then the day's messages."""
        day = START + timedelta(days=offset)
        if day.day == 1 and day > START:
            previous = (day - timedelta(days=1)).strftime("%Y-%m")
            self.app.run_invoices(previous, day)
        for op in self.history.days.get(offset, []):
            raw = self.message(op, day)
            if raw is not None:
                self.apply([raw])
        return day

    def run(self, day: date) -> list[dict[str, Any]]:
        fired = self.app.run_collections(day)
        check_suspensions_need_more_than_min_amount(self.app, fired, day)
        head = self.app.head_position()
        assert self.app.run_collections(day) == [], f"re-running {day} fired again"
        assert self.app.head_position() == head
        return fired

    def suspended(self) -> dict[str, bool]:
        return {c.customer_id: self.app.get(c.customer_id).status == "suspended"
                for c in self.history.customers}  # fmt: skip

    def check_never_suspended_while_the_rule_is_met(self, day: date) -> None:
        for c in self.history.customers:
            account = self.app.get(c.customer_id)
            if account.status != "suspended":
                continue
            if c.policy == "standard":
                # paid_in_full = nothing past due (SPEC §4): what is not yet due never counts.
                overdue = overdue_total(account.open_items(), day)
                assert overdue > 0, f"{c}: nothing past due but suspended on {day}"
            else:
                overdue = overdue_total(account.open_items(), day)
                assert overdue > MIN_AMOUNT, f"{c}: {overdue} past due but suspended on {day}"


def check_suspensions_need_more_than_min_amount(
    app: LedgerApplication, fired: list[dict[str, Any]], day: date
) -> None:
    acting = {
        f["customer_id"]
        for f in fired
        if f["event_type"] == "SubscriptionSuspended"
        or (f["event_type"] == "DunningNoticeSent" and f["action"] == "suspend")
    }
    for customer_id in acting:
        # The balances view as it stood on that day, folded by the projection.
        row = compute_view(app, "balances", day, historical=True, customer_id=customer_id)[0]
        assert Decimal(row["overdue"]) > MIN_AMOUNT, (
            f"{customer_id} suspended on {day} with only {row['overdue']} past due"
        )


def every_day() -> Iterator[int]:
    yield from range(DAYS)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories())
def test_daily_or_last_day_runs_never_suspend_at_or_below_min_amount_and_reruns_are_no_ops(
    history: History,
) -> None:
    daily, once = Ledger(history), Ledger(history)
    try:
        for offset in every_day():
            day = daily.day(offset)
            daily.check_never_suspended_while_the_rule_is_met(day)
            daily.run(day)
            daily.check_never_suspended_while_the_rule_is_met(day)
            once.day(offset)
            once.check_never_suspended_while_the_rule_is_met(day)
        once.run(LAST)
        once.check_never_suspended_while_the_rule_is_met(LAST)

        # Re-running any past day afterwards, in any order, changes nothing (the last-day
        # ledger never ran those days: a first run of a past day may well act).
        head = daily.app.head_position()
        for offset in reversed(range(0, DAYS, 3)):
            assert daily.app.run_collections(START + timedelta(days=offset)) == []
        assert daily.app.head_position() == head

        kinds = {
            type(e).__name__ for c in history.customers for e in daily.app.stream(c.customer_id)
        }
        for kind in ("SubscriptionSuspended", "SubscriptionReinstated", "PaymentReversed"):
            event(f"daily ledger has {kind}: {kind in kinds}")
        event(f"last-day run suspended someone: {any(once.suspended().values())}")
        resuspended = any(
            "SubscriptionSuspended" in [type(e).__name__ for e in stream[i + 1 :]]
            for c in history.customers
            for stream in [daily.app.stream(c.customer_id)]
            for i, e in enumerate(stream)
            if type(e).__name__ == "SubscriptionReinstated"
        )
        event(f"daily ledger suspended again after a reinstatement: {resuspended}")

        # What the last-day run suspends, daily runs have suspended too.
        for customer_id, suspended in once.suspended().items():
            if suspended:
                assert daily.suspended()[customer_id], customer_id
        # The views agree with the aggregates.
        for ledger in (daily, once):
            statuses = {
                r["customer_id"]: r["status"] == "suspended"
                for r in compute_view(ledger.app, "balances", LAST)
            }
            assert statuses == ledger.suspended()
    finally:
        daily.app.close()
        once.app.close()
