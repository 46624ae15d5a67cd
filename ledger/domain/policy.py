"""Collections policies (SPEC §4 "Collections") as pure code: parse, describe, and plan.

Nothing here reads files or clocks: the TOML is read by `ledger.store.policy_file`, and every
planning function takes the as-of date, so a run is deterministic for a given date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from ledger.domain.errors import InvalidMessage, LedgerError
from ledger.domain.money import fmt, parse_decimal

Action = Literal["reminder", "final_notice", "suspend"]
Reinstatement = Literal["paid_in_full", "below_min_amount"]

ACTIONS: tuple[Action, ...] = get_args(Action)
REINSTATEMENTS: tuple[Reinstatement, ...] = get_args(Reinstatement)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z", re.ASCII)  # \Z: no final newline
_POLICY_KEYS = frozenset({"steps", "reinstatement"})
_STEP_KEYS = frozenset({"days_past_due", "action", "min_amount"})


class PolicyError(LedgerError):
    """A policy (or the policy file) is invalid. The message names the policy and the field."""

    code = "invalid_policy"


@dataclass(frozen=True)
class PolicyStep:
    """One step; its index in the policy's `steps` is its identity (fires once per invoice)."""

    days_past_due: int
    action: Action
    min_amount: Decimal


@dataclass(frozen=True)
class CollectionsPolicy:
    """A named list of steps with strictly increasing `days_past_due`, and a reinstatement rule.

    Validated on construction, so a policy built in code obeys the same rules as one parsed
    from the file. Raises `PolicyError`.
    """

    name: str
    steps: tuple[PolicyStep, ...]
    reinstatement: Reinstatement

    def __post_init__(self) -> None:
        _validate_policy(self)

    def reinstatement_threshold(self) -> Decimal:
        """The overdue amount at or below which suspended subscriptions are reinstated.

        `paid_in_full` -> 0 (nothing past due may remain);
        `below_min_amount` -> the min_amount of the suspend step (the smallest if several).
        """
        if self.reinstatement == "paid_in_full":
            return Decimal(0)
        return min(s.min_amount for s in self.steps if s.action == "suspend")

    @property
    def has_suspend(self) -> bool:
        return any(s.action == "suspend" for s in self.steps)


def _fail(policy: str, where: str, problem: str, field: str) -> PolicyError:
    prefix = f"policy {policy!r}" + (f" {where}" if where else "")
    return PolicyError(f"{prefix}: {problem}", field=field)


def _validate_policy(p: CollectionsPolicy) -> None:
    name = p.name
    base = f"policies.{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PolicyError(
            f"policy {name!r}: name must be letters, digits, '_' or '-' (starting with a letter"
            " or digit)",
            field="policies",
        )
    if not isinstance(p.steps, tuple):
        raise _fail(name, "", "steps must be a tuple of PolicyStep", f"{base}.steps")
    if not p.steps:
        raise _fail(name, "", "steps must not be empty", f"{base}.steps")
    previous: int | None = None
    for i, step in enumerate(p.steps):
        where = f"step {i + 1}"  # 1-based in messages, as a person counts them in the file
        path = f"{base}.steps[{i}]"
        if not isinstance(step, PolicyStep):
            raise _fail(name, where, "must be a PolicyStep", path)
        days = step.days_past_due
        if isinstance(days, bool) or not isinstance(days, int):
            raise _fail(
                name,
                where,
                f"days_past_due must be an integer, got {days!r}",
                f"{path}.days_past_due",
            )
        if days < 0:
            raise _fail(name, where, "days_past_due must be >= 0", f"{path}.days_past_due")
        if previous is not None and days <= previous:
            raise _fail(
                name,
                where,
                f"days_past_due must be greater than the previous step's ({days} <= {previous});"
                " steps are in strictly increasing order of days",
                f"{path}.days_past_due",
            )
        previous = days
        if step.action not in ACTIONS:
            raise _fail(
                name,
                where,
                f"unknown action {step.action!r} (expected one of {', '.join(ACTIONS)})",
                f"{path}.action",
            )
        amount = step.min_amount
        if not isinstance(amount, Decimal) or not amount.is_finite():
            raise _fail(
                name,
                where,
                f"min_amount must be a finite Decimal, got {amount!r}",
                f"{path}.min_amount",
            )
        if amount < 0:
            raise _fail(name, where, "min_amount must be >= 0", f"{path}.min_amount")
    if p.reinstatement not in REINSTATEMENTS:
        raise _fail(
            name,
            "",
            f"unknown reinstatement {p.reinstatement!r} (expected one of "
            f"{', '.join(REINSTATEMENTS)})",
            f"{base}.reinstatement",
        )
    if p.reinstatement == "below_min_amount" and not p.has_suspend:
        raise _fail(
            name,
            "",
            "reinstatement 'below_min_amount' needs a suspend step",
            f"{base}.reinstatement",
        )


STANDARD_POLICY = CollectionsPolicy(
    name="standard",
    steps=(
        PolicyStep(days_past_due=7, action="reminder", min_amount=Decimal("0")),
        PolicyStep(days_past_due=21, action="final_notice", min_amount=Decimal("0")),
        PolicyStep(days_past_due=30, action="suspend", min_amount=Decimal("10.00")),
    ),
    reinstatement="paid_in_full",
)

BUILT_IN_POLICIES: Mapping[str, CollectionsPolicy] = {"standard": STANDARD_POLICY}


# --- parsing ---------------------------------------------------------------------------------


def parse_policies(data: Mapping[str, Any]) -> dict[str, CollectionsPolicy]:
    """Policies from a TOML-decoded mapping `{"policies": {name: {steps, reinstatement}}}`.

    Each policy needs `reinstatement` and a non-empty `steps` array; each step needs
    `days_past_due` (int >= 0, strictly increasing) and `action`; `min_amount` (decimal string
    or int, never float, >= 0) defaults to 0. Unknown keys are refused at every level.
    A policy named "standard" overrides the built-in; the result always holds "standard".
    Raises `PolicyError`.
    """
    if not isinstance(data, Mapping):
        raise PolicyError("policy file: expected a table at the top level", field="")
    unknown = sorted(set(data) - {"policies"})
    if unknown:
        raise PolicyError(
            f"policy file: unknown key(s) {', '.join(map(repr, unknown))} (expected 'policies')",
            field=unknown[0],
        )
    tables = data.get("policies", {})
    if not isinstance(tables, Mapping):
        raise PolicyError("policy file: 'policies' must be a table", field="policies")
    result: dict[str, CollectionsPolicy] = dict(BUILT_IN_POLICIES)
    for name, table in tables.items():
        result[name] = _parse_policy(name, table)
    return result


def _parse_policy(name: str, table: object) -> CollectionsPolicy:
    base = f"policies.{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise PolicyError(
            f"policy {name!r}: name must be letters, digits, '_' or '-' (starting with a letter"
            " or digit)",
            field="policies",
        )
    if not isinstance(table, Mapping):
        raise _fail(name, "", "must be a table", base)
    unknown = sorted(set(table) - _POLICY_KEYS)
    if unknown:
        raise _fail(
            name,
            "",
            f"unknown key {unknown[0]!r} (expected reinstatement, steps)",
            f"{base}.{unknown[0]}",
        )
    if "reinstatement" not in table:
        raise _fail(name, "", "reinstatement is required", f"{base}.reinstatement")
    reinstatement = table["reinstatement"]
    raw_steps = table.get("steps")
    if raw_steps is None:
        raise _fail(name, "", "steps is required", f"{base}.steps")
    if not isinstance(raw_steps, list):
        raise _fail(name, "", "steps must be an array of tables", f"{base}.steps")
    if not raw_steps:
        raise _fail(name, "", "steps must not be empty", f"{base}.steps")
    steps = tuple(_parse_step(name, i, raw) for i, raw in enumerate(raw_steps))
    return CollectionsPolicy(name=name, steps=steps, reinstatement=reinstatement)


def _parse_step(name: str, i: int, raw: object) -> PolicyStep:
    where = f"step {i + 1}"
    path = f"policies.{name}.steps[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(name, where, "must be a table", path)
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise _fail(
            name,
            where,
            f"unknown key {unknown[0]!r} (expected days_past_due, action, min_amount)",
            f"{path}.{unknown[0]}",
        )
    for key in ("days_past_due", "action"):
        if key not in raw:
            raise _fail(name, where, f"{key} is required", f"{path}.{key}")
    try:
        amount = parse_decimal(raw.get("min_amount", "0"), "min_amount")
    except InvalidMessage as exc:
        raise _fail(name, where, exc.message, f"{path}.min_amount") from exc
    # Types, values and order of days, action and reinstatement are checked by
    # CollectionsPolicy itself, so a policy built in code gets the same messages.
    return PolicyStep(days_past_due=raw["days_past_due"], action=raw["action"], min_amount=amount)


# --- describing ------------------------------------------------------------------------------

_ACTION_WORDS: Mapping[str, str] = {
    "reminder": "we send a reminder",
    "final_notice": "we send a final notice",
    "suspend": "we suspend all your subscriptions",
}


def describe(policy: CollectionsPolicy, currency: str = "USD") -> str:
    """The policy in plain words a customer could read."""
    sentences = [f"Policy {policy.name!r}:"]
    for i, step in enumerate(policy.steps):
        subject = "an invoice's due date" if i == 0 else "the due date"
        when = _days_phrase(_effective_days(step)) + f" after {subject}"
        if step.min_amount > 0:
            amount = f"{fmt(step.min_amount, currency)} {currency}"
            when += f", when more than {amount} is past due,"
        sentences.append(f"{when} {_ACTION_WORDS[step.action]}.")
    if policy.has_suspend:
        if policy.reinstatement == "paid_in_full":
            rule = "nothing is past due any more (invoices not yet due do not count)"
        else:
            threshold = fmt(policy.reinstatement_threshold(), currency)
            rule = f"no more than {threshold} {currency} is past due"
        sentences.append(f"Suspended subscriptions are reinstated as soon as {rule}.")
    return " ".join(sentences)


def _days_phrase(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueInvoice:
    """An open invoice of the customer (overdue or not yet): its remainder still unpaid."""

    invoice_id: str
    due_date: date
    remainder: Decimal


@dataclass(frozen=True)
class PlannedAction:
    """A step to fire for an invoice; `amount` is that invoice's remainder."""

    invoice_id: str
    step_index: int
    step: PolicyStep
    days_past_due: int
    amount: Decimal


def days_past_due(due_date: date, as_of: date) -> int:
    """`as_of - due_date` in days when positive, else 0 (SPEC §6)."""
    return max((as_of - due_date).days, 0)


def _effective_days(step: PolicyStep) -> int:
    # A step only fires for an overdue invoice (>= 1 day past due): on its due date the
    # customer can still pay in time, so a step at 0 days fires the day after.
    return max(step.days_past_due, 1)


def _open(invoices: Sequence[OverdueInvoice]) -> list[OverdueInvoice]:
    # Settled invoices (remainder <= 0) are ignored, as are their unfired steps.
    return sorted(
        (inv for inv in invoices if inv.remainder > 0),
        key=lambda inv: (inv.due_date, inv.invoice_id),
    )


def overdue_total(open_invoices: Sequence[OverdueInvoice], as_of: date) -> Decimal:
    """The customer's overdue total: remainders of open invoices past due on `as_of`."""
    return sum(
        (inv.remainder for inv in _open(open_invoices) if days_past_due(inv.due_date, as_of) > 0),
        Decimal(0),
    )


def plan_actions(
    policy: CollectionsPolicy,
    open_invoices: Sequence[OverdueInvoice],
    fired: AbstractSet[tuple[str, int]],
    as_of: date,
) -> list[PlannedAction]:
    """The steps to fire on `as_of` for one customer. Pure and deterministic.

    Step `i` fires for invoice X when X is past due (at least 1 day) by at least
    `step.days_past_due` days, `(X.invoice_id, i)` is not in `fired`, and the customer's
    overdue total (all invoices past due on `as_of`) is strictly greater than
    `step.min_amount`.

    Catch-up rule: a run that finds several due steps not yet fired (e.g. the first run is
    on day 35) fires all of them at once, in step order (reminder, final notice, suspend),
    rather than only the latest or one per run. So running daily and running once give the
    same set of fired steps as long as remainders do not change.

    Order of the result: by invoice due date, invoice id, then step index.
    """
    invoices = _open(open_invoices)
    total = overdue_total(invoices, as_of)
    planned: list[PlannedAction] = []
    for inv in invoices:
        dpd = days_past_due(inv.due_date, as_of)
        if dpd <= 0:
            continue
        for i, step in enumerate(policy.steps):
            if dpd < step.days_past_due or (inv.invoice_id, i) in fired:
                continue
            if total > step.min_amount:
                planned.append(PlannedAction(inv.invoice_id, i, step, dpd, inv.remainder))
    return planned


def reinstatement_met(policy: CollectionsPolicy, outstanding: Decimal, overdue: Decimal) -> bool:
    """Whether suspended subscriptions are to be reinstated.

    `paid_in_full`: nothing past due remains (`overdue <= 0`): invoices not yet due
    (`outstanding` beyond `overdue`) do not keep a customer suspended (SPEC §4);
    `below_min_amount`: `overdue <=` the suspend step's min_amount (the smallest if several).
    """
    del outstanding  # kept in the signature for callers; what is not yet due never counts
    return overdue <= policy.reinstatement_threshold()


def next_action(
    policy: CollectionsPolicy,
    open_invoices: Sequence[OverdueInvoice],
    fired: AbstractSet[tuple[str, int]],
    as_of: date,
) -> tuple[Action, date] | None:
    """The next step that will fire for some open invoice, and the date it becomes due.

    The date is `due_date + days_past_due` (at least the day after the due date, see
    `plan_actions`); min_amount is ignored for steps due after `as_of`. A step already due
    on `as_of` but not fired counts only if it would fire on `as_of` (it is due now, with its
    own date); one held back by min_amount has no predictable date and is skipped.
    Earliest date first, ties broken by invoice due date, invoice id and step index.
    None when nothing is left.
    """
    invoices = _open(open_invoices)
    due_now = {(a.invoice_id, a.step_index) for a in plan_actions(policy, invoices, fired, as_of)}
    best: tuple[date, date, str, int, Action] | None = None
    for inv in invoices:
        for i, step in enumerate(policy.steps):
            if (inv.invoice_id, i) in fired:
                continue
            when = inv.due_date + timedelta(days=_effective_days(step))
            if when <= as_of and (inv.invoice_id, i) not in due_now:
                continue
            candidate = (when, inv.due_date, inv.invoice_id, i, step.action)
            if best is None or candidate[:4] < best[:4]:
                best = candidate
    return None if best is None else (best[4], best[0])
