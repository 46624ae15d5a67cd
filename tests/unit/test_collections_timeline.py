"""Collections on a calendar (SPEC §4 "Collections", issue 6): concrete dates, the real
ingest path (parsed messages), invoice runs and `run_collections(as_of)` on an in-memory
LedgerApplication, checked on the stored events and on the `delinquency` / `balances` views.

The customer is invoiced on 2025-02-01 for January; with 14/30/45 days' terms the invoice is
due 2025-02-15 / 2025-03-03 / 2025-03-18. The `standard` policy: reminder at 7 days past due,
final notice at 21, suspend at 30 when more than 10.00 is past due, reinstate when paid in full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.app.application import LedgerApplication
from ledger.app.batching import Outcome
from ledger.app.views import compute_view
from ledger.domain import events as ev
from ledger.domain.policy import STANDARD_POLICY, CollectionsPolicy, PolicyStep
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    charge,
    credit_note,
    customer_registered,
    customer_updated,
    msg,
    payment,
    payment_reversed,
)

C = "contoso"
INVOICE = f"INV-{C}-2025-01"
INVOICE_DATE = date(2025, 2, 1)
RECORDED = datetime(2025, 12, 31, 12, 0, tzinfo=UTC)
SUBSCRIPTIONS = (f"sub-{C}-1", f"sub-{C}-2")

# Same steps as `standard`, but reinstated as soon as no more than 10.00 is past due.
GRACE = CollectionsPolicy("grace", STANDARD_POLICY.steps, "below_min_amount")
# Suspends only at 60 days: for a policy change that must not be retroactive.
PATIENT = CollectionsPolicy(
    "patient",
    (PolicyStep(60, "suspend", STANDARD_POLICY.steps[2].min_amount),),
    "paid_in_full",
)


@pytest.fixture
def app() -> Iterator[LedgerApplication]:
    ledger = LedgerApplication(
        eventsourcing_env("memory://"),
        clock=lambda: RECORDED,
        policies={"standard": STANDARD_POLICY, "grace": GRACE, "patient": PATIENT},
    )
    yield ledger
    ledger.close()


# ---- helpers ------------------------------------------------------------------------------


def at(day: date) -> str:
    return f"{day.isoformat()}T10:00:00Z"


def apply_all(app: LedgerApplication, *raws: str) -> list[Outcome]:
    outcomes = app.handle_batch([msg(r) for r in raws]).outcomes
    assert [o.status for o in outcomes] == ["applied"] * len(raws), outcomes
    return outcomes


def invoiced(
    app: LedgerApplication,
    *,
    terms: int = 30,
    amounts: tuple[str, ...] = ("60.00", "40.00"),
    policy: str = "standard",
) -> date:
    """Register contoso, post one January charge per amount (each on its own subscription),
    invoice them on 2025-02-01, and return the invoice's due date."""
    apply_all(
        app,
        customer_registered(
            C, payment_terms_days=terms, collections_policy=policy,
            occurred_at=at(date(2025, 1, 2)),
        ),
    )  # fmt: skip
    apply_all(
        app,
        *(
            charge(C, f"CH-{n}", amount, subscription_id=f"sub-{C}-{n}",
                   occurred_at=at(date(2025, 1, 15)))
            for n, amount in enumerate(amounts, start=1)
        ),
    )  # fmt: skip
    assert app.run_invoices("2025-01", INVOICE_DATE) == [INVOICE]
    return INVOICE_DATE + timedelta(days=terms)


def run(app: LedgerApplication, day: date) -> list[tuple[str, str]]:
    """Run collections as of `day`; what fired, in order: (event type, action or subscription)."""
    return [
        (e["event_type"], e.get("action") or e["subscription_id"]) for e in app.run_collections(day)
    ]


def stored(app: LedgerApplication, *kinds: type[ev.LedgerEvent]) -> list[ev.LedgerEvent]:
    return [e for e in app.stream(C) if isinstance(e, kinds)]


def delinquency(app: LedgerApplication, day: date, historical: bool = False) -> dict[str, Any]:
    rows = compute_view(app, "delinquency", day, historical=historical, customer_id=C)
    assert len(rows) == 1, rows
    return rows[0]


def collections_fields(app: LedgerApplication, day: date, historical: bool = False) -> tuple:
    row = delinquency(app, day, historical)
    return (
        row["last_action"], row["last_action_date"], row["suspended_since"],
        row["next_action"], row["next_action_date"],
    )  # fmt: skip


def balance(app: LedgerApplication, day: date, historical: bool = False) -> dict[str, Any]:
    rows = compute_view(app, "balances", day, historical=historical, customer_id=C)
    assert len(rows) == 1, rows
    return rows[0]


def status(app: LedgerApplication, day: date, historical: bool = False) -> str:
    return str(balance(app, day, historical)["status"])


def iso(day: date) -> str:
    return day.isoformat()


def days_after(due: date) -> Callable[[int], date]:
    """`day(n)`: the date n days after `due` (n days past due)."""

    def day(n: int) -> date:
        return due + timedelta(days=n)

    return day


REMINDER = [("DunningNoticeSent", "reminder")]
FINAL = [("DunningNoticeSent", "final_notice")]
SUSPEND = [("DunningNoticeSent", "suspend")] + [("SubscriptionSuspended", s) for s in SUBSCRIPTIONS]
REINSTATED = [("SubscriptionReinstated", s) for s in SUBSCRIPTIONS]


# ---- the policy's steps, in order -----------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "due"),
    [(14, date(2025, 2, 15)), (30, date(2025, 3, 3)), (45, date(2025, 3, 18))],
)
def test_runs_at_7_21_30_days_past_due_fire_reminder_final_notice_and_suspension(
    app: LedgerApplication, terms: int, due: date
) -> None:
    assert invoiced(app, terms=terms) == due
    day = days_after(due)

    assert run(app, due) == []  # due today: the customer can still pay in time
    assert collections_fields(app, day(1)) == (
        None, None, None, "reminder", iso(day(7)),
    )  # fmt: skip
    assert run(app, day(6)) == []

    assert run(app, day(7)) == REMINDER
    assert collections_fields(app, day(7)) == (
        "reminder", iso(day(7)), None, "final_notice", iso(day(21)),
    )  # fmt: skip
    assert status(app, day(7)) == "active"
    assert run(app, day(20)) == []

    assert run(app, day(21)) == FINAL
    assert collections_fields(app, day(21)) == (
        "final_notice", iso(day(21)), None, "suspend", iso(day(30)),
    )  # fmt: skip
    assert status(app, day(21)) == "active"
    assert run(app, day(29)) == []

    assert run(app, day(30)) == SUSPEND
    assert collections_fields(app, day(30)) == (
        "suspend", iso(day(30)), iso(day(30)), None, None,
    )  # fmt: skip
    assert status(app, day(30)) == "suspended"
    assert app.get(C).status == "suspended"
    assert run(app, day(60)) == []  # every step fired once for this invoice

    notices = [e.data for e in stored(app, ev.DunningNoticeSent)]
    assert notices == [
        {"policy": "standard", "step": step, "action": action, "invoice_id": INVOICE,
         "amount": "100.00", "days_past_due": days, "as_of": iso(day(days))}
        for step, (action, days) in enumerate(
            [("reminder", 7), ("final_notice", 21), ("suspend", 30)]
        )
    ]  # fmt: skip
    suspended = stored(app, ev.SubscriptionSuspended)
    assert [e.data for e in suspended] == [
        {"subscription_id": s, "policy": "standard", "step": 2, "invoice_id": INVOICE,
         "reinstatement": "paid_in_full", "threshold": "0.00"}
        for s in SUBSCRIPTIONS
    ]  # fmt: skip
    # Dated the run's day, decided by the ledger itself (no ingest message).
    for event in stored(app, ev.DunningNoticeSent, ev.SubscriptionSuspended):
        assert event.occurred_at == datetime.combine(
            date.fromisoformat(event.data.get("as_of", iso(day(30)))), datetime.min.time(), UTC
        )
        assert event.message_id is None

    # The views as they stood on each day (replayed up to it) tell the same story.
    assert collections_fields(app, day(10), historical=True)[:3] == ("reminder", iso(day(7)), None)
    assert collections_fields(app, day(25), historical=True)[3:] == ("suspend", iso(day(30)))
    assert status(app, day(29), historical=True) == "active"
    assert status(app, day(30), historical=True) == "suspended"


def test_a_first_run_on_day_35_catches_up_every_step_in_order(app: LedgerApplication) -> None:
    """The documented catch-up choice (`plan_actions`): every due step not yet fired fires
    in one run, in step order, so the customer still gets the reminder and final notice
    before the suspension, and daily and occasional runs end up with the same steps."""
    due = invoiced(app)
    day35 = due + timedelta(days=35)

    assert run(app, day35) == REMINDER + FINAL + SUSPEND
    assert [
        (e.data["action"], e.data["days_past_due"]) for e in stored(app, ev.DunningNoticeSent)
    ] == [("reminder", 35), ("final_notice", 35), ("suspend", 35)]
    # The delinquency view shows the day's most severe action.
    assert collections_fields(app, day35) == ("suspend", iso(day35), iso(day35), None, None)
    assert status(app, day35) == "suspended"


# ---- min_amount -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "suspended"), [("10.00", False), ("10.01", True), ("9.99", False)]
)
def test_suspension_needs_more_than_min_amount_past_due(
    app: LedgerApplication, amount: str, suspended: bool
) -> None:
    due = invoiced(app, amounts=(amount,))
    day30 = due + timedelta(days=30)

    fired = run(app, day30)
    # Reminder and final notice have min_amount 0: they always go out.
    expected = [("DunningNoticeSent", a) for a in ("reminder", "final_notice")]
    if suspended:
        expected += [("DunningNoticeSent", "suspend"), ("SubscriptionSuspended", SUBSCRIPTIONS[0])]
    assert fired == expected
    assert status(app, day30) == ("suspended" if suspended else "active")
    row = delinquency(app, day30)
    assert row["overdue"] == amount
    # A step held back by min_amount has no predictable date: nothing is announced.
    assert (row["next_action"], row["suspended_since"]) == (
        (None, iso(day30)) if suspended else (None, None)
    )
    assert run(app, day30 + timedelta(days=30)) == []  # time alone changes nothing


def test_min_amount_compares_the_customers_whole_overdue_total(app: LedgerApplication) -> None:
    """6.00 + 6.00 past due on two invoices is 12.00 > 10.00: the older one's suspend fires."""
    due = invoiced(app, amounts=("6.00",))
    apply_all(
        app,
        charge(C, "CH-F", "6.00", billing_period="2025-02", subscription_id=SUBSCRIPTIONS[0],
               occurred_at=at(date(2025, 2, 15))),
    )  # fmt: skip
    # Invoiced late (2025-03-15), so it is due 2025-04-14, after the January one's day 30.
    assert app.run_invoices("2025-02", date(2025, 3, 15)) == [f"INV-{C}-2025-02"]
    feb_due = date(2025, 4, 14)

    assert run(app, due + timedelta(days=30)) == REMINDER + FINAL  # only 6.00 past due yet
    assert run(app, feb_due) == []
    fired = app.run_collections(feb_due + timedelta(days=1))
    assert [(f["event_type"], f.get("action"), f.get("invoice_id")) for f in fired] == [
        ("DunningNoticeSent", "suspend", INVOICE),
        ("SubscriptionSuspended", None, INVOICE),
    ]


@pytest.mark.parametrize(("paid", "suspended"), [("90.00", False), ("89.99", True)])
def test_a_partial_payment_leaving_at_most_min_amount_prevents_the_suspension(
    app: LedgerApplication, paid: str, suspended: bool
) -> None:
    due = invoiced(app)
    assert run(app, due + timedelta(days=7)) == REMINDER
    apply_all(app, payment(C, "P1", paid, occurred_at=at(due + timedelta(days=10))))
    assert run(app, due + timedelta(days=21)) == FINAL  # min_amount 0: still owed

    fired = run(app, due + timedelta(days=30))
    assert fired == (SUSPEND if suspended else [])
    assert status(app, due + timedelta(days=30)) == ("suspended" if suspended else "active")


# ---- reinstatement --------------------------------------------------------------------------


def suspended_on_day_30(app: LedgerApplication, policy: str = "standard") -> date:
    due = invoiced(app, policy=policy)
    assert run(app, due + timedelta(days=30)) == REMINDER + FINAL + SUSPEND
    return due


def events_of_batch(app: LedgerApplication, before: int) -> list[tuple[str, Any]]:
    return [
        (type(e).__name__, e.data.get("subscription_id") or e.data.get("amount"))
        for e in app.stream(C)
        if e.originator_version > before
    ]


@pytest.mark.parametrize("final", ["payment", "credit_note"])
def test_paid_in_full_reinstates_with_the_payment_that_pays_everything(
    app: LedgerApplication, final: str
) -> None:
    due = suspended_on_day_30(app)
    day31, day32 = due + timedelta(days=31), due + timedelta(days=32)

    apply_all(app, payment(C, "P1", "60.00", occurred_at=at(day31)))
    assert app.get(C).status == "suspended"  # 40.00 still owed: not paid in full
    assert status(app, day31) == "suspended"

    before = app.get(C).version
    last = (
        payment(C, "P2", "40.00", occurred_at=at(day32))
        if final == "payment"
        else credit_note(C, "CN1", "40.00", occurred_at=at(day32))
    )
    apply_all(app, last)
    # The message itself reinstates: no collections run in between.
    source = "PaymentReceived" if final == "payment" else "CreditNoteIssued"
    assert events_of_batch(app, before) == [
        (source, "40.00"), ("PaymentApplied", "40.00"),
        *[("SubscriptionReinstated", s) for s in SUBSCRIPTIONS],
    ]  # fmt: skip
    reinstated = stored(app, ev.SubscriptionReinstated)
    assert [e.data for e in reinstated] == [
        {"subscription_id": s, "rule": "paid_in_full"} for s in SUBSCRIPTIONS
    ]
    assert {e.occurred_at for e in reinstated} == {datetime.fromisoformat(at(day32))}
    assert app.get(C).status == "active"
    assert status(app, day32) == "active"
    assert status(app, day31, historical=True) == "suspended"
    assert compute_view(app, "delinquency", day32, customer_id=C) == []  # nothing overdue
    assert run(app, day32) == []


def test_below_min_amount_reinstates_as_soon_as_at_most_min_amount_is_past_due(
    app: LedgerApplication,
) -> None:
    due = suspended_on_day_30(app, policy="grace")
    day31, day32 = due + timedelta(days=31), due + timedelta(days=32)
    assert stored(app, ev.SubscriptionSuspended)[0].data["reinstatement"] == "below_min_amount"
    assert stored(app, ev.SubscriptionSuspended)[0].data["threshold"] == "10.00"

    apply_all(app, payment(C, "P1", "89.99", occurred_at=at(day31)))  # 10.01 left
    assert app.get(C).status == "suspended"

    before = app.get(C).version
    apply_all(app, payment(C, "P2", "0.01", occurred_at=at(day32)))  # 10.00 left
    assert events_of_batch(app, before) == [
        ("PaymentReceived", "0.01"), ("PaymentApplied", "0.01"),
        *[("SubscriptionReinstated", s) for s in SUBSCRIPTIONS],
    ]  # fmt: skip
    assert [e.data["rule"] for e in stored(app, ev.SubscriptionReinstated)] == [
        "below_min_amount"
    ] * 2
    assert status(app, day32) == "active"
    # Still owed, still listed as delinquent, but nothing more is due under the policy.
    assert collections_fields(app, day32) == ("suspend", iso(due + timedelta(days=30)), None,
                                              None, None)  # fmt: skip
    assert delinquency(app, day32)["overdue"] == "10.00"
    assert run(app, day32) == []
    assert run(app, due + timedelta(days=90)) == []


def test_a_credit_invoice_that_pays_everything_reinstates_at_the_invoice_run(
    app: LedgerApplication,
) -> None:
    """Refunds that outweigh charges make a credit invoice, which settles older invoices
    like a credit note does: that is also money meeting the rule."""
    due = suspended_on_day_30(app)
    apply_all(
        app,
        charge(C, "CH-R", "-150.00", charge_type="cancel_refund", billing_period="2025-04",
               subscription_id=SUBSCRIPTIONS[0], occurred_at=at(date(2025, 4, 10))),
    )  # fmt: skip
    assert app.get(C).status == "suspended"
    assert app.run_invoices("2025-04", date(2025, 5, 1)) == [f"INV-{C}-2025-04"]
    assert app.get(C).status == "active"
    assert [e.data["rule"] for e in stored(app, ev.SubscriptionReinstated)] == ["paid_in_full"] * 2
    assert status(app, due + timedelta(days=60)) == "active"


def test_a_reversal_after_reinstatement_makes_the_next_run_suspend_again(
    app: LedgerApplication,
) -> None:
    """The suspend step is re-armed by the reinstatement (see
    `CustomerAccount._when_SubscriptionReinstated`): the reversed invoice is past due again by
    more than 10.00, so the next run suspends again; the reminder and final notice, already
    sent for that invoice, are not sent again."""
    due = suspended_on_day_30(app)
    day = days_after(due)
    apply_all(app, payment(C, "P1", "100.00", occurred_at=at(day(31))))
    assert app.get(C).status == "active"
    assert run(app, day(32)) == []

    apply_all(app, payment_reversed(C, "P1", occurred_at=at(day(33))))
    assert app.get(C).status == "active"  # a reversal does not suspend on its own
    row = delinquency(app, day(33))
    assert (row["overdue"], row["days_past_due"]) == ("100.00", 33)
    # The re-armed suspend is due now (it would fire on day 33), as the view says.
    assert collections_fields(app, day(33)) == (
        "suspend", iso(day(30)), None, "suspend", iso(day(30)),
    )  # fmt: skip
    assert status(app, day(33)) == "active"

    assert run(app, day(34)) == SUSPEND
    again = stored(app, ev.DunningNoticeSent)[-1].data
    assert (again["action"], again["step"], again["days_past_due"]) == ("suspend", 2, 34)
    assert collections_fields(app, day(34)) == ("suspend", iso(day(34)), iso(day(34)), None, None)
    assert status(app, day(34)) == "suspended"

    # Re-running that day, or any earlier day, changes nothing.
    head = app.head_position()
    for earlier in (34, 33, 31, 30, 21, 7):
        assert run(app, day(earlier)) == []
    assert app.head_position() == head

    # And the customer can be reinstated again the same way.
    apply_all(app, payment(C, "P3", "100.00", occurred_at=at(day(36))))
    assert app.get(C).status == "active"
    assert len(stored(app, ev.SubscriptionReinstated)) == 4


# ---- determinism ----------------------------------------------------------------------------


def test_running_twice_for_the_same_date_changes_nothing(app: LedgerApplication) -> None:
    due = invoiced(app)
    days = [due + timedelta(days=n) for n in (3, 7, 21, 30, 35)]
    for day in days:
        run(app, day)
        head = app.head_position()
        assert run(app, day) == []
        assert app.head_position() == head
    head = app.head_position()
    for day in reversed(days):  # past dates too, in any order
        assert run(app, day) == []
    assert app.head_position() == head
    assert len(stored(app, ev.DunningNoticeSent)) == 3


def test_a_run_does_not_look_at_events_after_its_date(app: LedgerApplication) -> None:
    """A run for 30 days past due, made after a payment of day 40 was already recorded:
    the suspension happens as of day 30 (the money was not there then). The payment met the
    rule, so the subscriptions are reinstated at once, dated the payment's day: the customer
    is shown suspended from day 30 to day 40 and is active now. Later changes of policy and
    later subscriptions do not count either."""
    due = invoiced(app)
    day = days_after(due)
    apply_all(
        app,
        customer_updated(C, collections_policy="patient", occurred_at=at(day(35))),
        charge(C, "CH-9", "5.00", subscription_id=f"sub-{C}-9", billing_period="2025-04",
               occurred_at=at(day(36))),
        payment(C, "P1", "100.00", occurred_at=at(day(40))),
    )  # fmt: skip

    assert run(app, day(30)) == REMINDER + FINAL + SUSPEND + REINSTATED
    assert [e.data["policy"] for e in stored(app, ev.SubscriptionSuspended)] == ["standard"] * 2
    assert {e.occurred_at for e in stored(app, ev.SubscriptionSuspended)} == {
        datetime.combine(day(30), datetime.min.time(), UTC)
    }
    assert {e.occurred_at for e in stored(app, ev.SubscriptionReinstated)} == {
        datetime.fromisoformat(at(day(40)))
    }
    assert status(app, day(30), historical=True) == "suspended"
    assert status(app, day(39), historical=True) == "suspended"
    assert status(app, day(40), historical=True) == "active"
    assert app.get(C).status == "active"
    assert run(app, day(30)) == []


def test_a_later_payment_that_does_not_meet_the_rule_keeps_the_suspension(
    app: LedgerApplication,
) -> None:
    due = invoiced(app)
    apply_all(app, payment(C, "P1", "50.00", occurred_at=at(due + timedelta(days=40))))
    assert run(app, due + timedelta(days=30)) == REMINDER + FINAL + SUSPEND
    assert app.get(C).status == "suspended"


def test_money_dated_before_the_suspension_is_judged_against_what_was_then_past_due(
    app: LedgerApplication,
) -> None:
    """Under `grace`, a payment recorded late but dated before the suspension settles the
    January invoice; February's 100.00 was past due when the customer was suspended, so the
    customer stays suspended (the rule is not checked on the payment's earlier date)."""
    due = invoiced(app, policy="grace")
    apply_all(
        app,
        charge(C, "CH-F", "100.00", billing_period="2025-02", subscription_id=SUBSCRIPTIONS[0],
               occurred_at=at(date(2025, 2, 15))),
    )  # fmt: skip
    assert app.run_invoices("2025-02", date(2025, 3, 1)) == [f"INV-{C}-2025-02"]  # due 03-31
    assert run(app, due + timedelta(days=30)) == REMINDER + FINAL + SUSPEND  # 200.00 past due

    apply_all(app, payment(C, "P1", "100.00", occurred_at=at(due + timedelta(days=7))))
    assert app.get(C).status == "suspended"
    assert stored(app, ev.SubscriptionReinstated) == []

    apply_all(app, payment(C, "P2", "95.00", occurred_at=at(due + timedelta(days=8))))
    reinstated = stored(app, ev.SubscriptionReinstated)  # 5.00 left: at most 10.00
    assert len(reinstated) == 2
    # Dated no earlier than the suspension it ends.
    assert {e.occurred_at for e in reinstated} == {
        datetime.combine(due + timedelta(days=30), datetime.min.time(), UTC)
    }


def test_rerunning_a_day_before_a_payment_does_not_reinstate(app: LedgerApplication) -> None:
    """Found by the property test: a re-run of a date before an (early, partial) payment must
    not judge the rule on that payment's date, when nothing was past due yet."""
    due = invoiced(app, amounts=("20.00",), policy="grace")
    apply_all(app, payment(C, "P1", "0.01", occurred_at=at(due - timedelta(days=20))))
    assert run(app, due + timedelta(days=30)) == [
        *REMINDER, *FINAL, ("DunningNoticeSent", "suspend"),
        ("SubscriptionSuspended", SUBSCRIPTIONS[0]),
    ]  # fmt: skip
    head = app.head_position()
    for before in (21, 25, 29):
        assert run(app, due - timedelta(days=before)) == []
    assert app.head_position() == head
    assert app.get(C).status == "suspended"


# ---- preview --------------------------------------------------------------------------------


def test_preview_tells_what_a_run_would_do_and_stores_nothing(app: LedgerApplication) -> None:
    due = invoiced(app)
    day30 = due + timedelta(days=30)
    head = app.head_position()

    preview = app.run_collections(day30, dry_run=True)
    assert app.head_position() == head
    assert app.get(C).status == "active"
    assert app.run_collections(day30, dry_run=True) == preview
    assert app.run_collections(day30) == preview
    assert app.head_position() == head + len(preview)


def test_ledger_collections_preview_on_the_command_line_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.cli import main as cli
    from ledger.config import get_settings

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    monkeypatch.setenv("LEDGER_LOG_FORMAT", "json")
    get_settings.cache_clear()
    try:
        store = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
        due = invoiced(store)
        head = store.head_position()
        store.close()
        runner = CliRunner()
        as_of = ["--as-of", iso(due + timedelta(days=30))]

        previewed = runner.invoke(cli.app, ["collections", "preview", *as_of])
        assert previewed.exit_code == 0, previewed.output
        assert previewed.stdout.splitlines()[0] == f"would fire 5 events as of {as_of[1]}"
        assert f"{C}: suspend {INVOICE}" in previewed.stdout
        store = LedgerApplication(eventsourcing_env(url))
        assert store.head_position() == head
        store.close()

        done = runner.invoke(cli.app, ["collections", "run", *as_of])
        assert done.exit_code == 0, done.output
        assert done.stdout.splitlines()[0] == f"fired 5 events as of {as_of[1]}"
        assert done.stdout.splitlines()[1:] == previewed.stdout.splitlines()[1:]
        store = LedgerApplication(eventsourcing_env(url))
        assert store.head_position() == head + 5
        store.close()
    finally:
        get_settings.cache_clear()
