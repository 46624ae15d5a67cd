"""Collections policy: parsing, description, and which steps fire when (SPEC §4)."""

from __future__ import annotations

import tomllib
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.policy import (
    STANDARD_POLICY,
    CollectionsPolicy,
    OverdueInvoice,
    PolicyError,
    PolicyStep,
    describe,
    next_action,
    overdue_total,
    parse_policies,
    plan_actions,
    reinstatement_met,
)
from ledger.store.policy_file import EXAMPLE_POLICY_TOML, load_policies

DUE = date(2026, 1, 31)


def inv(invoice_id: str = "INV-C1-2025-12", due: date = DUE, remainder: str = "100.00"):
    return OverdueInvoice(invoice_id=invoice_id, due_date=due, remainder=Decimal(remainder))


def planned(policy, invoices, fired, as_of):
    return [
        (a.invoice_id, a.step_index, a.step.action)
        for a in plan_actions(policy, invoices, fired, as_of)
    ]


def policy_data(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    table: dict[str, Any] = {"reinstatement": "paid_in_full", "steps": steps}
    table.update(extra)
    return {"policies": {"strict": table}}


# --- the standard policy, step by step ---------------------------------------------------


def test_standard_policy_is_reminder_7_final_notice_21_suspend_30_over_10():
    assert [(s.days_past_due, s.action, s.min_amount) for s in STANDARD_POLICY.steps] == [
        (7, "reminder", Decimal(0)),
        (21, "final_notice", Decimal(0)),
        (30, "suspend", Decimal("10.00")),
    ]
    assert STANDARD_POLICY.reinstatement == "paid_in_full"
    assert STANDARD_POLICY.reinstatement_threshold() == Decimal(0)


def test_nothing_fires_before_seven_days_past_due():
    assert planned(STANDARD_POLICY, [inv()], set(), date(2026, 1, 31)) == []
    assert planned(STANDARD_POLICY, [inv()], set(), date(2026, 2, 6)) == []


def test_day_7_fires_the_reminder_only():
    actions = plan_actions(STANDARD_POLICY, [inv()], set(), date(2026, 2, 7))
    assert [(a.invoice_id, a.step_index, a.step.action) for a in actions] == [
        ("INV-C1-2025-12", 0, "reminder")
    ]
    assert actions[0].days_past_due == 7
    assert actions[0].amount == Decimal("100.00")


def test_day_21_fires_the_final_notice_when_the_reminder_already_fired():
    fired = {("INV-C1-2025-12", 0)}
    assert planned(STANDARD_POLICY, [inv()], fired, date(2026, 2, 21)) == [
        ("INV-C1-2025-12", 1, "final_notice")
    ]


def test_day_30_with_exactly_10_00_overdue_does_not_suspend():
    fired = {("INV-C1-2025-12", 0), ("INV-C1-2025-12", 1)}
    assert planned(STANDARD_POLICY, [inv(remainder="10.00")], fired, date(2026, 3, 2)) == []


def test_day_30_with_10_01_overdue_suspends():
    fired = {("INV-C1-2025-12", 0), ("INV-C1-2025-12", 1)}
    actions = plan_actions(STANDARD_POLICY, [inv(remainder="10.01")], fired, date(2026, 3, 2))
    assert [(a.step_index, a.step.action, a.days_past_due) for a in actions] == [(2, "suspend", 30)]


def test_first_run_on_day_35_fires_every_due_step_in_order():
    assert planned(STANDARD_POLICY, [inv()], set(), date(2026, 3, 7)) == [
        ("INV-C1-2025-12", 0, "reminder"),
        ("INV-C1-2025-12", 1, "final_notice"),
        ("INV-C1-2025-12", 2, "suspend"),
    ]


def test_steps_already_fired_never_repeat():
    fired = {("INV-C1-2025-12", 0), ("INV-C1-2025-12", 1), ("INV-C1-2025-12", 2)}
    for day in range(0, 120, 5):
        as_of = DUE + timedelta(days=day)
        assert planned(STANDARD_POLICY, [inv()], fired, as_of) == []


def test_two_overdue_invoices_each_get_their_own_steps_in_due_date_order():
    older = inv("INV-C1-2025-11", date(2025, 12, 31), "6.00")
    newer = inv("INV-C1-2025-12", DUE, "6.00")
    fired = {("INV-C1-2025-11", 0)}
    # Day 38 for the older, day 7 for the newer: together 12.00 > 10.00 past due.
    assert planned(STANDARD_POLICY, [newer, older], fired, date(2026, 2, 7)) == [
        ("INV-C1-2025-11", 1, "final_notice"),
        ("INV-C1-2025-11", 2, "suspend"),
        ("INV-C1-2025-12", 0, "reminder"),
    ]


def test_the_min_amount_compares_the_customers_overdue_total_not_one_invoice():
    older = inv("INV-C1-2025-11", date(2025, 12, 31), "6.00")
    not_yet_due = inv("INV-C1-2026-01", date(2026, 3, 2), "500.00")
    fired = {("INV-C1-2025-11", 0), ("INV-C1-2025-11", 1)}
    # Only 6.00 is past due on its day 30: the invoice not yet due does not count.
    assert planned(STANDARD_POLICY, [older, not_yet_due], fired, date(2026, 1, 30)) == []
    newer = inv("INV-C1-2025-12", DUE, "6.00")
    assert planned(STANDARD_POLICY, [older, newer], fired, date(2026, 2, 1)) == [
        ("INV-C1-2025-11", 2, "suspend")
    ]
    assert overdue_total([older, newer, not_yet_due], date(2026, 2, 1)) == Decimal("12.00")


def test_settled_invoices_are_ignored():
    assert planned(STANDARD_POLICY, [inv(remainder="0.00")], set(), date(2026, 3, 7)) == []


def test_a_step_at_day_0_fires_the_day_after_the_due_date():
    policy = CollectionsPolicy("zero", (PolicyStep(0, "reminder", Decimal(0)),), "paid_in_full")
    assert planned(policy, [inv()], set(), DUE) == []
    assert planned(policy, [inv()], set(), DUE + timedelta(days=1)) == [
        ("INV-C1-2025-12", 0, "reminder")
    ]
    assert next_action(policy, [inv()], set(), DUE) == ("reminder", DUE + timedelta(days=1))


# --- reinstatement -------------------------------------------------------------------------


def test_paid_in_full_needs_nothing_past_due():
    assert reinstatement_met(STANDARD_POLICY, Decimal("0.00"), Decimal("0.00"))
    assert reinstatement_met(STANDARD_POLICY, Decimal("-5.00"), Decimal("0.00"))
    assert not reinstatement_met(STANDARD_POLICY, Decimal("0.01"), Decimal("0.01"))
    # SPEC §4 (issue #13.5): an invoice not yet due does not keep a customer suspended.
    assert reinstatement_met(STANDARD_POLICY, Decimal("50.00"), Decimal("0.00"))


def test_below_min_amount_compares_overdue_with_the_suspend_steps_min_amount():
    policy = parse_policies(tomllib.loads(EXAMPLE_POLICY_TOML))["strict"]
    assert policy.reinstatement_threshold() == Decimal("50.00")
    assert reinstatement_met(policy, Decimal("500.00"), Decimal("50.00"))
    assert not reinstatement_met(policy, Decimal("500.00"), Decimal("50.01"))


def test_below_min_amount_threshold_is_the_smallest_suspend_min_amount():
    policy = CollectionsPolicy(
        "two-suspends",
        (
            PolicyStep(10, "suspend", Decimal("100")),
            PolicyStep(20, "suspend", Decimal("25")),
            PolicyStep(30, "reminder", Decimal("1")),
        ),
        "below_min_amount",
    )
    assert policy.reinstatement_threshold() == Decimal("25")


# --- next action ---------------------------------------------------------------------------


def test_next_action_dates_follow_the_due_date():
    invoices = [inv()]
    assert next_action(STANDARD_POLICY, invoices, set(), date(2026, 2, 1)) == (
        "reminder",
        date(2026, 2, 7),
    )
    fired = {("INV-C1-2025-12", 0)}
    assert next_action(STANDARD_POLICY, invoices, fired, date(2026, 2, 7)) == (
        "final_notice",
        date(2026, 2, 21),
    )
    fired.add(("INV-C1-2025-12", 1))
    assert next_action(STANDARD_POLICY, invoices, fired, date(2026, 2, 21)) == (
        "suspend",
        date(2026, 3, 2),
    )
    fired.add(("INV-C1-2025-12", 2))
    assert next_action(STANDARD_POLICY, invoices, fired, date(2026, 3, 2)) is None


def test_next_action_is_the_earliest_over_all_invoices():
    older = inv("INV-C1-2025-11", date(2025, 12, 31))
    newer = inv("INV-C1-2025-12", DUE)
    fired = {("INV-C1-2025-11", 0), ("INV-C1-2025-11", 1)}
    # Older invoice's suspend on 2026-01-30 comes before the newer one's reminder on 02-07.
    assert next_action(STANDARD_POLICY, [newer, older], fired, date(2026, 1, 25)) == (
        "suspend",
        date(2026, 1, 30),
    )


def test_next_action_reports_a_step_due_now_but_skips_one_held_back_by_min_amount():
    invoices = [inv(remainder="10.00")]
    # Not run yet on day 35: the reminder is due now (dated its own day).
    assert next_action(STANDARD_POLICY, invoices, set(), date(2026, 3, 7)) == (
        "reminder",
        date(2026, 2, 7),
    )
    # Reminder and final notice sent; the suspend waits for more than 10.00 past due.
    fired = {("INV-C1-2025-12", 0), ("INV-C1-2025-12", 1)}
    assert next_action(STANDARD_POLICY, invoices, fired, date(2026, 3, 7)) is None


def test_next_action_ignores_min_amount_for_future_steps():
    invoices = [inv(remainder="1.00")]
    fired = {("INV-C1-2025-12", 0), ("INV-C1-2025-12", 1)}
    assert next_action(STANDARD_POLICY, invoices, fired, date(2026, 2, 21)) == (
        "suspend",
        date(2026, 3, 2),
    )


# --- describe ------------------------------------------------------------------------------


def test_describe_the_standard_policy():
    assert describe(STANDARD_POLICY) == (
        "Policy 'standard': 7 days after an invoice's due date we send a reminder. "
        "21 days after the due date we send a final notice. "
        "30 days after the due date, when more than 10.00 USD is past due, "
        "we suspend all your subscriptions. "
        "Suspended subscriptions are reinstated as soon as nothing is past due any more "
        "(invoices not yet due do not count)."
    )


def test_describe_below_min_amount_in_the_customers_currency():
    policy = parse_policies(tomllib.loads(EXAMPLE_POLICY_TOML))["strict"]
    assert describe(policy, "EUR") == (
        "Policy 'strict': 5 days after an invoice's due date we send a reminder. "
        "10 days after the due date we send a final notice. "
        "15 days after the due date, when more than 50.00 EUR is past due, "
        "we suspend all your subscriptions. "
        "Suspended subscriptions are reinstated as soon as no more than 50.00 EUR is past due."
    )


def test_describe_a_policy_without_suspend_says_nothing_about_reinstatement():
    policy = CollectionsPolicy("soft", (PolicyStep(1, "reminder", Decimal(0)),), "paid_in_full")
    assert (
        describe(policy) == "Policy 'soft': 1 day after an invoice's due date we send a reminder."
    )


# --- parsing -------------------------------------------------------------------------------


def test_the_example_file_parses():
    policies = parse_policies(tomllib.loads(EXAMPLE_POLICY_TOML))
    assert set(policies) == {"standard", "strict", "lenient"}
    assert policies["standard"] is STANDARD_POLICY
    strict = policies["strict"]
    assert strict.reinstatement == "below_min_amount"
    assert [(s.days_past_due, s.action, s.min_amount) for s in strict.steps] == [
        (5, "reminder", Decimal("0.00")),
        (10, "final_notice", Decimal("0.00")),
        (15, "suspend", Decimal("50.00")),
    ]
    # min_amount left out means 0.
    assert policies["lenient"].steps[0].min_amount == Decimal(0)


def test_an_empty_file_gives_only_the_built_in_standard():
    assert parse_policies({}) == {"standard": STANDARD_POLICY}
    assert parse_policies({"policies": {}}) == {"standard": STANDARD_POLICY}


def test_a_standard_policy_in_the_file_overrides_the_built_in():
    data = {
        "policies": {
            "standard": {
                "reinstatement": "paid_in_full",
                "steps": [{"days_past_due": 3, "action": "suspend", "min_amount": 0}],
            }
        }
    }
    standard = parse_policies(data)["standard"]
    assert standard.steps == (PolicyStep(3, "suspend", Decimal(0)),)


def test_min_amount_may_be_an_int():
    data = policy_data([{"days_past_due": 1, "action": "reminder", "min_amount": 5}])
    assert parse_policies(data)["strict"].steps[0].min_amount == Decimal(5)


STEP = {"days_past_due": 5, "action": "reminder", "min_amount": "0.00"}

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown_action",
        policy_data([{**STEP, "action": "email"}]),
        "policy 'strict' step 1: unknown action 'email' (expected one of reminder, "
        "final_notice, suspend)",
        "policies.strict.steps[0].action",
    ),
    (
        "steps_out_of_order",
        policy_data([STEP, {**STEP, "days_past_due": 3, "action": "final_notice"}]),
        "policy 'strict' step 2: days_past_due must be greater than the previous step's "
        "(3 <= 5); steps are in strictly increasing order of days",
        "policies.strict.steps[1].days_past_due",
    ),
    (
        "two_steps_on_the_same_day",
        policy_data([STEP, {**STEP, "action": "final_notice"}]),
        "policy 'strict' step 2: days_past_due must be greater than the previous step's "
        "(5 <= 5); steps are in strictly increasing order of days",
        "policies.strict.steps[1].days_past_due",
    ),
    (
        "negative_days",
        policy_data([{**STEP, "days_past_due": -1}]),
        "policy 'strict' step 1: days_past_due must be >= 0",
        "policies.strict.steps[0].days_past_due",
    ),
    (
        "days_not_an_integer",
        policy_data([{**STEP, "days_past_due": "7"}]),
        "policy 'strict' step 1: days_past_due must be an integer, got '7'",
        "policies.strict.steps[0].days_past_due",
    ),
    (
        "days_a_boolean",
        policy_data([{**STEP, "days_past_due": True}]),
        "policy 'strict' step 1: days_past_due must be an integer, got True",
        "policies.strict.steps[0].days_past_due",
    ),
    (
        "negative_min_amount",
        policy_data([{**STEP, "min_amount": "-0.01"}]),
        "policy 'strict' step 1: min_amount must be >= 0",
        "policies.strict.steps[0].min_amount",
    ),
    (
        "float_min_amount",
        policy_data([{**STEP, "min_amount": 10.5}]),
        "policy 'strict' step 1: min_amount: must be a decimal string, got 10.5",
        "policies.strict.steps[0].min_amount",
    ),
    (
        "garbage_min_amount",
        policy_data([{**STEP, "min_amount": "ten"}]),
        "policy 'strict' step 1: min_amount: 'ten' is not a decimal number",
        "policies.strict.steps[0].min_amount",
    ),
    (
        "unknown_reinstatement",
        policy_data([STEP], reinstatement="never"),
        "policy 'strict': unknown reinstatement 'never' (expected one of paid_in_full, "
        "below_min_amount)",
        "policies.strict.reinstatement",
    ),
    (
        "missing_reinstatement",
        {"policies": {"strict": {"steps": [STEP]}}},
        "policy 'strict': reinstatement is required",
        "policies.strict.reinstatement",
    ),
    (
        "below_min_amount_without_suspend",
        policy_data([STEP], reinstatement="below_min_amount"),
        "policy 'strict': reinstatement 'below_min_amount' needs a suspend step",
        "policies.strict.reinstatement",
    ),
    (
        "unknown_step_key",
        policy_data([{**STEP, "channel": "email"}]),
        "policy 'strict' step 1: unknown key 'channel' (expected days_past_due, action, "
        "min_amount)",
        "policies.strict.steps[0].channel",
    ),
    (
        "unknown_policy_key",
        policy_data([STEP], grace_days=3),
        "policy 'strict': unknown key 'grace_days' (expected reinstatement, steps)",
        "policies.strict.grace_days",
    ),
    (
        "unknown_top_level_key",
        {"policy": {}},
        "policy file: unknown key(s) 'policy' (expected 'policies')",
        "policy",
    ),
    (
        "empty_steps",
        policy_data([]),
        "policy 'strict': steps must not be empty",
        "policies.strict.steps",
    ),
    (
        "missing_steps",
        {"policies": {"strict": {"reinstatement": "paid_in_full"}}},
        "policy 'strict': steps is required",
        "policies.strict.steps",
    ),
    (
        "steps_not_an_array",
        policy_data({"days_past_due": 1}),  # type: ignore[arg-type]
        "policy 'strict': steps must be an array of tables",
        "policies.strict.steps",
    ),
    (
        "step_not_a_table",
        policy_data([5]),  # type: ignore[list-item]
        "policy 'strict' step 1: must be a table",
        "policies.strict.steps[0]",
    ),
    (
        "missing_action",
        policy_data([{"days_past_due": 5}]),
        "policy 'strict' step 1: action is required",
        "policies.strict.steps[0].action",
    ),
    (
        "missing_days",
        policy_data([{"action": "reminder"}]),
        "policy 'strict' step 1: days_past_due is required",
        "policies.strict.steps[0].days_past_due",
    ),
    (
        "policy_not_a_table",
        {"policies": {"strict": "reminder"}},
        "policy 'strict': must be a table",
        "policies.strict",
    ),
    (
        "policies_not_a_table",
        {"policies": ["strict"]},
        "policy file: 'policies' must be a table",
        "policies",
    ),
    (
        "bad_policy_name",
        {"policies": {"my policy": {"reinstatement": "paid_in_full", "steps": [STEP]}}},
        "policy 'my policy': name must be letters, digits, '_' or '-' (starting with a letter"
        " or digit)",
        "policies",
    ),
]


@pytest.mark.parametrize(
    ("data", "message", "field"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_policies_are_refused_with_a_clear_message(data, message, field):
    with pytest.raises(PolicyError) as excinfo:
        parse_policies(data)
    assert excinfo.value.code == "invalid_policy"
    assert excinfo.value.message == message
    assert excinfo.value.field == field


def test_a_policy_built_in_code_is_validated_too():
    with pytest.raises(PolicyError, match="policy 'x' step 1: days_past_due must be >= 0"):
        CollectionsPolicy("x", (PolicyStep(-1, "reminder", Decimal(0)),), "paid_in_full")


# --- loading the file ----------------------------------------------------------------------


def test_load_policies_without_a_file_gives_the_built_ins():
    assert load_policies(None) == {"standard": STANDARD_POLICY}


def test_load_policies_reads_the_file(tmp_path: Path):
    path = tmp_path / "policies.toml"
    path.write_text(EXAMPLE_POLICY_TOML, encoding="utf-8")
    assert set(load_policies(path)) == {"standard", "strict", "lenient"}


def test_a_missing_policy_file_is_named_in_the_error(tmp_path: Path):
    path = tmp_path / "nope.toml"
    with pytest.raises(PolicyError, match=r"policy file '.*nope\.toml': not found"):
        load_policies(path)


def test_a_toml_syntax_error_is_named_in_the_error(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[policies.strict\nreinstatement = 1\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"policy file '.*broken\.toml': not valid TOML") as e:
        load_policies(path)
    assert e.value.code == "invalid_policy"


def test_an_invalid_policy_in_the_file_names_the_file_and_the_field(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[policies.strict]\nreinstatement = "paid_in_full"\n'
        '[[policies.strict.steps]]\ndays_past_due = 5\naction = "email"\n',
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as excinfo:
        load_policies(path)
    assert excinfo.value.message.startswith(
        f"policy file {str(path)!r}: policy 'strict' step 1: unknown action 'email'"
    )
    assert excinfo.value.field == "policies.strict.steps[0].action"


# --- properties ----------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("40.00"), places=2)
invoice_lists = st.lists(
    st.tuples(st.integers(min_value=0, max_value=45), amounts),
    min_size=1,
    max_size=5,
).map(
    lambda rows: [
        OverdueInvoice(f"INV-{i}", DUE + timedelta(days=offset), amount)
        for i, (offset, amount) in enumerate(rows)
    ]
)


@st.composite
def policies(draw: st.DrawFn) -> CollectionsPolicy:
    days = sorted(draw(st.sets(st.integers(min_value=0, max_value=40), min_size=1, max_size=4)))
    steps = tuple(
        PolicyStep(
            d,
            draw(st.sampled_from(["reminder", "final_notice", "suspend"])),
            draw(st.decimals(min_value=0, max_value=Decimal("60.00"), places=2)),
        )
        for d in days
    )
    return CollectionsPolicy("random", steps, "paid_in_full")


@settings(max_examples=200, deadline=None)
@given(policy=st.one_of(st.just(STANDARD_POLICY), policies()), invoices=invoice_lists)
def test_running_daily_or_once_on_day_60_fires_the_same_steps(policy, invoices):
    first = min(i.due_date for i in invoices)
    last = first + timedelta(days=60)
    fired: set[tuple[str, int]] = set()
    day = first
    while day <= last:
        actions = plan_actions(policy, invoices, fired, day)
        keys = {(a.invoice_id, a.step_index) for a in actions}
        assert not keys & fired, "a step fired twice"
        fired |= keys
        day += timedelta(days=1)
    once = {(a.invoice_id, a.step_index) for a in plan_actions(policy, invoices, set(), last)}
    assert fired == once


@settings(max_examples=200, deadline=None)
@given(
    policy=st.one_of(st.just(STANDARD_POLICY), policies()),
    invoices=invoice_lists,
    offset=st.integers(min_value=0, max_value=90),
)
def test_a_step_never_fires_unless_more_than_its_min_amount_is_past_due(policy, invoices, offset):
    as_of = DUE + timedelta(days=offset)
    total = overdue_total(invoices, as_of)
    actions = plan_actions(policy, invoices, set(), as_of)
    for action in actions:
        # In particular: no suspend unless more than the suspend step's min_amount is past due.
        assert total > action.step.min_amount
    due = {i.invoice_id: i.due_date for i in invoices}
    keys = [(due[a.invoice_id], a.invoice_id, a.step_index) for a in actions]
    assert keys == sorted(keys)
    assert actions == plan_actions(policy, list(reversed(invoices)), set(), as_of)
