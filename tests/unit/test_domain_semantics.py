"""Domain semantics found wrong with real-world inputs (issue #13 kinds 3, 5, 6, 7, 8 and
issue #14 kind 5), each checked on the aggregate and on the SPEC §6 views:

- every calendar date derived from a timestamp is its UTC date (SPEC §2);
- `paid_in_full` means nothing past due; a suspended customer stays on the worklist (§4, §6);
- only cash is collected (§6) and only cash-funded credit is refunded (§3);
- an unknown collections policy is refused, never replaced by `standard` (§3, §4);
- views are functions of the facts, not of the order they arrived in (#14.5).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.app.application import LedgerApplication
from ledger.app.batching import Outcome
from ledger.app.collections import CollectionsIncomplete
from ledger.app.views import compute_view, project_rows
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount, utc_day
from ledger.domain.policy import STANDARD_POLICY, CollectionsPolicy, PolicyStep
from ledger.domain.stream import Meta
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    LEDGER_CLI,
    charge,
    credit_note,
    customer_registered,
    customer_updated,
    jsonl,
    msg,
    payment,
    payment_reversed,
    refund,
    support_escalated,
    support_ticket_opened,
)

RECORDED = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
NO_SUSPEND = CollectionsPolicy(
    "no-suspend",
    (PolicyStep(7, "reminder", Decimal(0)), PolicyStep(21, "final_notice", Decimal(0))),
    "paid_in_full",
)


def new_app(policies: dict[str, CollectionsPolicy] | None = None) -> LedgerApplication:
    return LedgerApplication(
        eventsourcing_env("memory://"), clock=lambda: RECORDED,
        policies=policies or {"standard": STANDARD_POLICY},
    )  # fmt: skip


@pytest.fixture
def app() -> LedgerApplication:
    return new_app()


def handle(app: LedgerApplication, *raws: str) -> list[Outcome]:
    return app.handle_batch([msg(r) for r in raws]).outcomes


def apply_all(app: LedgerApplication, *raws: str) -> None:
    outcomes = handle(app, *raws)
    refused = [(r, o.error) for r, o in zip(raws, outcomes, strict=True) if o.status != "applied"]
    assert not refused, refused


def view(app: LedgerApplication, name: str, day: date, **filters: Any) -> list[dict[str, Any]]:
    return compute_view(app, name, day, historical=True, **filters)


def row_of(app: LedgerApplication, name: str, day: date, customer: str) -> dict[str, Any]:
    rows = view(app, name, day, customer_id=customer)
    assert len(rows) == 1, rows
    return rows[0]


def register(app: LedgerApplication, *customers: str, terms: int = 30) -> None:
    apply_all(
        app,
        *(
            customer_registered(c, occurred_at="2025-12-01T00:00:00Z", payment_terms_days=terms)
            for c in customers
        ),
    )


# ---- #13.3: calendar dates are UTC dates ---------------------------------------------------


def test_utc_day_is_the_date_in_utc_in_both_directions() -> None:
    assert utc_day(datetime.fromisoformat("2026-02-16T08:30:00+11:00")) == date(2026, 2, 15)
    assert utc_day(datetime.fromisoformat("2026-02-15T23:30:00-05:00")) == date(2026, 2, 16)
    assert utc_day(datetime.fromisoformat("2026-02-15T23:59:59+00:00")) == date(2026, 2, 15)


def payments_near_midnight(app: LedgerApplication) -> None:
    register(app, "H", "M")
    apply_all(
        app,
        # 2026-02-15 21:30 UTC, written in Sydney's offset (already the 16th there)
        payment("H", "P-H", "50.00", occurred_at="2026-02-16T08:30:00+11:00"),
        # 2026-02-16 04:30 UTC, written in New York's offset (still the 15th there)
        payment("M", "P-M", "50.00", occurred_at="2026-02-15T23:30:00-05:00"),
    )


def test_last_payment_date_is_the_utc_date_of_the_payment(app: LedgerApplication) -> None:
    payments_near_midnight(app)
    on_15 = {r["customer_id"]: r for r in view(app, "balances", date(2026, 2, 15))}
    assert on_15["H"]["paid"] == "50.00" and on_15["H"]["last_payment_date"] == "2026-02-15"
    assert on_15["M"]["paid"] == "0.00" and on_15["M"]["last_payment_date"] is None
    on_16 = {r["customer_id"]: r for r in view(app, "balances", date(2026, 2, 16))}
    assert on_16["M"]["paid"] == "50.00" and on_16["M"]["last_payment_date"] == "2026-02-16"
    # The live (not historical) view and the aggregate say the same.
    live = {r["customer_id"]: r for r in compute_view(app, "balances", date(2026, 3, 1))}
    assert (live["H"]["last_payment_date"], live["M"]["last_payment_date"]) == (
        "2026-02-15", "2026-02-16",
    )  # fmt: skip
    assert app.get("H").last_payment_date == "2026-02-15"
    assert app.get("M").last_payment_date == "2026-02-16"


def test_a_debit_memo_is_dated_on_the_utc_day_of_the_reversal(app: LedgerApplication) -> None:
    register(app, "c1")
    apply_all(
        app,
        payment("c1", "P-1", "80.00", occurred_at="2026-02-10T10:00:00Z"),
        refund("c1", "R-1", "30.00", occurred_at="2026-02-11T10:00:00Z"),
        # 2026-02-27 21:00 UTC, already the 28th in Karachi
        payment_reversed("c1", "P-1", occurred_at="2026-02-28T02:00:00+05:00"),
    )
    memo = next(e for e in app.stream("c1") if isinstance(e, ev.DebitMemoIssued))
    assert memo.data["due_date"] == "2026-02-27"
    invoices = project_rows(app, "accounts")["c1"]["invoices"]
    assert invoices["DM-P-1"]["invoice_date"] == "2026-02-27"
    # and the other way: a reversal late on the 27th in New York is the 28th in UTC
    register(app, "c2")
    apply_all(
        app,
        payment("c2", "P-2", "80.00", occurred_at="2026-02-10T10:00:00Z"),
        refund("c2", "R-2", "30.00", occurred_at="2026-02-11T10:00:00Z"),
        payment_reversed("c2", "P-2", occurred_at="2026-02-27T21:00:00-05:00"),
    )
    assert project_rows(app, "accounts")["c2"]["invoices"]["DM-P-2"]["invoice_date"] == (
        "2026-02-28"
    )


def test_cli_show_balances_as_of_uses_utc_dates(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    lines = [
        customer_registered("H", occurred_at="2026-01-01T00:00:00Z"),
        customer_registered("M", occurred_at="2026-01-01T00:00:00Z"),
        payment("H", "P-H", "50.00", occurred_at="2026-02-16T08:30:00+11:00"),
        payment("M", "P-M", "50.00", occurred_at="2026-02-15T23:30:00-05:00"),
    ]
    (tmp_path / "in.jsonl").write_text(jsonl(lines))
    assert cli(db, "ingest", str(tmp_path / "in.jsonl")).returncode == 0

    def balances(day: str) -> dict[str, dict[str, Any]]:
        done = cli(db, "show", "balances", "--as-of", day, "--json")
        assert done.returncode == 0, done.stderr
        return {r["customer_id"]: r for r in json.loads(done.stdout)}

    on_15, on_16 = balances("2026-02-15"), balances("2026-02-16")
    assert (on_15["H"]["paid"], on_15["H"]["last_payment_date"]) == ("50.00", "2026-02-15")
    assert (on_15["M"]["paid"], on_15["M"]["last_payment_date"]) == ("0.00", None)
    assert (on_16["M"]["paid"], on_16["M"]["last_payment_date"]) == ("50.00", "2026-02-16")


def cli(
    db: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` on the SQLite file `db`, with only these LEDGER_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    base.update(LEDGER_DATABASE_URL=f"sqlite:///{db}", LEDGER_LOG_FORMAT="json", **(env or {}))
    return subprocess.run(
        [LEDGER_CLI, *args], env=base, cwd=db.parent, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


# ---- #13.5: paid_in_full = nothing past due; suspended customers stay on the worklist ------

JAN_DUE = date(2026, 3, 3)  # invoice 2026-02-01 + 30 days
FEB_DUE = date(2026, 3, 31)  # invoice 2026-03-01 + 30 days


def suspended_for_january(app: LedgerApplication) -> None:
    """c1 owes January (due 03-03), suspended on 04-02 (30 days past due); February's invoice
    (due 03-31) is issued, and is 2 days past due on 04-02 too: so pay February first."""
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-JAN", "100.00", billing_period="2026-01",
               occurred_at="2026-01-31T10:00:00Z"),
        charge("c1", "CH-FEB", "60.00", billing_period="2026-02",
               occurred_at="2026-02-28T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    app.run_invoices("2026-02", date(2026, 3, 1))


def test_paying_the_past_due_invoice_reinstates_while_a_later_one_is_not_yet_due(
    app: LedgerApplication,
) -> None:
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-JAN", "100.00", billing_period="2026-01",
               occurred_at="2026-01-31T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    app.run_collections(date(2026, 4, 2))  # 30 days past due: suspended
    assert app.get("c1").status == "suspended"
    apply_all(
        app,
        charge("c1", "CH-APR", "60.00", billing_period="2026-03",
               occurred_at="2026-03-31T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-03", date(2026, 4, 3))  # due 05-03: not yet due
    apply_all(app, payment("c1", "P-1", "100.00", occurred_at="2026-04-05T10:00:00Z"))
    account = app.get("c1")
    assert account.status == "active"
    assert account.outstanding() == Decimal("60.00")  # February-like invoice still open
    reinstated = [e for e in app.stream("c1") if isinstance(e, ev.SubscriptionReinstated)]
    assert reinstated and reinstated[0].data["rule"] == "paid_in_full"
    assert row_of(app, "balances", date(2026, 4, 6), "c1")["status"] == "active"
    assert view(app, "delinquency", date(2026, 4, 6)) == []


def test_a_credit_note_that_clears_what_is_past_due_reinstates(app: LedgerApplication) -> None:
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-JAN", "100.00", billing_period="2026-01",
               occurred_at="2026-01-31T10:00:00Z"),
    )  # fmt: skip
    app.run_collections(date(2026, 1, 1))
    app.run_invoices("2026-01", date(2026, 2, 1))
    app.run_collections(date(2026, 4, 2))
    apply_all(
        app,
        charge("c1", "CH-MAR", "60.00", billing_period="2026-03",
               occurred_at="2026-03-31T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-03", date(2026, 4, 3))
    assert app.get("c1").status == "suspended"
    apply_all(
        app,
        credit_note("c1", "CN-1", "100.00", invoice_id="INV-c1-2026-01",
                    occurred_at="2026-04-05T10:00:00Z"),
    )  # fmt: skip
    assert app.get("c1").status == "active"


def test_the_rule_is_judged_on_the_utc_day_of_the_payment(app: LedgerApplication) -> None:
    """Paid at 2026-05-03 20:00 UTC, written as the 4th in Karachi: on the UTC day the later
    invoice (due 05-03) is not yet past due, so nothing past due remains."""
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-JAN", "100.00", billing_period="2026-01",
               occurred_at="2026-01-31T10:00:00Z"),
        charge("c1", "CH-MAR", "60.00", billing_period="2026-03",
               occurred_at="2026-03-31T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    app.run_collections(date(2026, 4, 2))
    app.run_invoices("2026-03", date(2026, 4, 3))
    assert app.get("c1").status == "suspended"
    apply_all(
        app,
        payment("c1", "P-1", "100.00", invoice_id="INV-c1-2026-01",
                occurred_at="2026-05-04T01:00:00+05:00"),
    )  # fmt: skip
    assert app.get("c1").status == "active"


def stuck_suspension(app: LedgerApplication) -> None:
    """A stream written before the fix: suspended, then January paid in full while the
    next invoice was not yet due, and left suspended (what the old rule did)."""
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-JAN", "100.00", billing_period="2026-01",
               occurred_at="2026-01-31T10:00:00Z"),
        charge("c1", "CH-MAR", "60.00", billing_period="2026-03",
               occurred_at="2026-03-31T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    app.run_invoices("2026-03", date(2026, 4, 3))
    apply_all(app, payment("c1", "P-1", "100.00", occurred_at="2026-04-01T10:00:00Z"))
    account = app.get("c1")
    meta = Meta(occurred_at=datetime(2026, 4, 2, tzinfo=UTC), recorded_at=RECORDED)
    account._emit(
        ev.SubscriptionSuspended,
        {"subscription_id": "sub-1", "policy": "standard", "step": 2,
         "invoice_id": "INV-c1-2026-01", "reinstatement": "paid_in_full", "threshold": "0.00"},
        meta,
    )  # fmt: skip
    app.save(account)
    assert app.get("c1").status == "suspended"


def test_a_suspended_customer_with_nothing_overdue_stays_on_the_worklist(
    app: LedgerApplication,
) -> None:
    stuck_suspension(app)
    row = row_of(app, "delinquency", date(2026, 4, 10), "c1")
    assert row["overdue"] == "0.00" and row["suspended_since"] == "2026-04-02"
    assert row["next_action"] == "reinstate_when_paid_in_full"
    assert row["next_action_date"] is None


def test_a_collections_run_reinstates_a_suspension_whose_rule_is_met(
    app: LedgerApplication,
) -> None:
    stuck_suspension(app)
    fired = app.run_collections(date(2026, 4, 10))
    assert [f["event_type"] for f in fired] == ["SubscriptionReinstated"]
    assert app.get("c1").status == "active"
    assert app.run_collections(date(2026, 4, 10)) == []
    assert view(app, "delinquency", date(2026, 4, 10)) == []


# ---- #13.6: only cash is collected -------------------------------------------------------


def test_credit_notes_are_not_cash_collected(app: LedgerApplication) -> None:
    register(app, "K", "L")
    apply_all(
        app,
        charge("K", "CH-K", "1000.00", cost="850.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
        charge("L", "CH-L", "200.00", cost="170.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    apply_all(
        app,
        credit_note("K", "CN-K", "1000.00", invoice_id="INV-K-2026-01",
                    occurred_at="2026-02-05T10:00:00Z"),
        payment("L", "P-L", "100.00", occurred_at="2026-02-05T10:00:00Z"),
    )  # fmt: skip
    (row,) = compute_view(app, "remittance", date(2026, 2, 10))
    assert row["collected_from_customers"] == "85.00"  # 0 + 170 x 0.5
    assert row["exposure"] == "935.00"
    # The invoice settled by the credit note is not shown as paid.
    invoices = project_rows(app, "accounts")
    k = invoices["K"]["invoices"]["INV-K-2026-01"]
    assert (Decimal(k["paid"]), Decimal(k["credited"]), Decimal(k["remainder"])) == (0, 1000, 0)
    balances = {r["customer_id"]: r for r in compute_view(app, "balances", date(2026, 2, 10))}
    assert balances["K"]["paid"] == "0.00" and balances["K"]["credited"] == "1000.00"


def test_a_reversed_payment_is_no_longer_collected(app: LedgerApplication) -> None:
    register(app, "L")
    apply_all(
        app,
        charge("L", "CH-L", "200.00", cost="170.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    apply_all(
        app,
        payment("L", "P-L", "200.00", occurred_at="2026-02-05T10:00:00Z"),
        payment_reversed("L", "P-L", occurred_at="2026-02-06T10:00:00Z"),
        credit_note("L", "CN-L", "200.00", occurred_at="2026-02-07T10:00:00Z"),
    )
    (row,) = compute_view(app, "remittance", date(2026, 2, 10))
    assert row["collected_from_customers"] == "0.00" and row["exposure"] == "170.00"


# ---- #13.7: only cash-funded credit is refunded --------------------------------------------


def codes(outcomes: list[Outcome]) -> list[str]:
    return [o.error.code if o.error else o.status for o in outcomes]


def test_credit_from_a_credit_note_is_not_refundable(app: LedgerApplication) -> None:
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-1", "100.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    apply_all(app, credit_note("c1", "CN-1", "120.00", occurred_at="2026-02-05T10:00:00Z"))
    assert app.get("c1").unapplied_credit() == Decimal("20.00")
    (outcome,) = handle(app, refund("c1", "R-1", "20.00", occurred_at="2026-02-06T10:00:00Z"))
    assert outcome.error is not None and outcome.error.code == "insufficient_credit"
    assert outcome.error.field == "amount" and "refundable" in outcome.error.message
    # Cash that comes in on top is refundable, and only that much.
    apply_all(app, payment("c1", "P-1", "30.00", occurred_at="2026-02-07T10:00:00Z"))
    assert codes(handle(app, refund("c1", "R-2", "30.01", occurred_at="2026-02-08T10:00:00Z"))) \
        == ["insufficient_credit"]  # fmt: skip
    apply_all(app, refund("c1", "R-3", "30.00", occurred_at="2026-02-08T10:00:00Z"))
    assert app.get("c1").unapplied_credit() == Decimal("20.00")  # the credit note's part
    assert app.get("c1").refundable_credit() == 0


def test_after_a_reversal_only_the_remaining_cash_is_refundable(app: LedgerApplication) -> None:
    register(app, "c1")
    apply_all(
        app,
        payment("c1", "P-1", "50.00", occurred_at="2026-02-01T10:00:00Z"),
        credit_note("c1", "CN-1", "20.00", occurred_at="2026-02-02T10:00:00Z"),
        payment("c1", "P-2", "5.00", occurred_at="2026-02-03T10:00:00Z"),
        payment_reversed("c1", "P-1", occurred_at="2026-02-04T10:00:00Z"),
    )
    account = app.get("c1")
    assert (account.unapplied_credit(), account.refundable_credit()) == (25, 5)
    assert codes(handle(app, refund("c1", "R-1", "5.01"))) == ["insufficient_credit"]
    apply_all(app, refund("c1", "R-2", "5.00", occurred_at="2026-02-05T10:00:00Z"))


# ---- #13.8: an unknown policy is refused, never replaced ---------------------------------


def test_registration_with_an_unknown_policy_is_refused_naming_the_field(
    app: LedgerApplication,
) -> None:
    (outcome,) = handle(app, customer_registered("c1", collections_policy="no-supend"))
    assert outcome.error is not None and outcome.error.code == "unknown_policy"
    assert outcome.error.field == "collections_policy"
    assert "'no-supend'" in outcome.error.message
    assert app.find("c1") is None
    # A policy that is defined is accepted.
    with_policy = new_app({"standard": STANDARD_POLICY, "no-suspend": NO_SUSPEND})
    apply_all(with_policy, customer_registered("c1", collections_policy="no-suspend"))
    assert with_policy.get("c1").collections_policy == "no-suspend"


def test_an_update_to_an_unknown_policy_is_refused(app: LedgerApplication) -> None:
    register(app, "c1")
    (outcome,) = handle(app, customer_updated("c1", collections_policy="no-suspend"))
    assert outcome.error is not None and outcome.error.code == "unknown_policy"
    assert outcome.error.field == "collections_policy"
    assert app.get("c1").collections_policy == "standard"


def test_a_collections_run_never_applies_another_policy() -> None:
    with_policy = new_app({"standard": STANDARD_POLICY, "no-suspend": NO_SUSPEND})
    register(with_policy, "a-std")
    apply_all(with_policy, customer_registered("b-gone", collections_policy="no-suspend",
                                               occurred_at="2025-12-01T00:00:00Z"))  # fmt: skip
    for c in ("a-std", "b-gone"):
        apply_all(
            with_policy,
            charge(c, f"CH-{c}", "100.00", billing_period="2026-01",
                   occurred_at="2026-01-20T10:00:00Z"),
        )  # fmt: skip
    with_policy.run_invoices("2026-01", date(2026, 2, 1))
    # The same store, now run without the policy file: "no-suspend" is gone.
    without = with_policy
    without.policies = {"standard": STANDARD_POLICY}
    with pytest.raises(CollectionsIncomplete) as raised:
        without.run_collections(date(2026, 4, 10))
    error = raised.value
    assert error.code == "unknown_policy"
    assert [e.field for e in error.skipped] == ["collections_policy"]
    assert "b-gone" in error.message and "'no-suspend'" in error.message
    assert {f["customer_id"] for f in error.fired} == {"a-std"}  # the rest was done
    assert with_policy.get("a-std").status == "suspended"
    assert with_policy.get("b-gone").status == "active"
    assert not [e for e in with_policy.stream("b-gone") if isinstance(e, ev.DunningNoticeSent)]
    # The worklist shows the policy it names, and no other policy's next step.
    rows = {r["customer_id"]: r for r in view(without, "delinquency", date(2026, 4, 10))}
    assert rows["b-gone"]["policy"] == "no-suspend" and rows["b-gone"]["next_action"] is None


def test_cli_collections_run_names_the_unknown_policy_and_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    policy_file = tmp_path / "policies.toml"
    policy_file.write_text(
        '[policies.no-suspend]\nreinstatement = "paid_in_full"\n'
        '[[policies.no-suspend.steps]]\ndays_past_due = 7\naction = "reminder"\n'
    )
    lines = [
        customer_registered("a-std", occurred_at="2025-12-01T00:00:00Z"),
        customer_registered("b-gone", collections_policy="no-suspend",
                            occurred_at="2025-12-01T00:00:00Z"),
        charge("a-std", "CH-A", "100.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
        charge("b-gone", "CH-B", "100.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
        customer_registered("c-typo", collections_policy="no-supend"),
    ]  # fmt: skip
    (tmp_path / "in.jsonl").write_text(jsonl(lines))
    env = {"LEDGER_POLICY_FILE": str(policy_file)}
    assert cli(db, "ingest", str(tmp_path / "in.jsonl"), env=env).returncode == 0
    listed = cli(db, "deadletters", "list", "--json", env=env)
    assert '"unknown_policy"' in listed.stdout and "collections_policy" in listed.stdout
    assert cli(db, "invoice", "run", "--period", "2026-01").returncode == 0
    done = cli(db, "collections", "run", "--as-of", "2026-04-10")  # no policy file
    assert done.returncode == 1
    assert "b-gone" in done.stderr and "no-suspend" in done.stderr
    assert "a-std: suspend" in done.stdout and "b-gone" not in done.stdout
    assert cli(db, "collections", "preview", "--as-of", "2026-04-10").returncode == 1


# ---- #14.5: views are functions of the facts, not of their order --------------------------

PAYMENT_TIMES = [
    "2026-02-16T08:30:00+11:00", "2026-02-15T23:30:00-05:00", "2026-02-03T10:00:00Z",
    "2026-03-01T00:00:00+14:00", "2026-02-28T23:59:59-12:00", "2026-02-20T12:00:00Z",
]  # fmt: skip


def ingest_in_order(order: list[int]) -> LedgerApplication:
    app = new_app()
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-1", "500.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))
    for i in order:
        apply_all(app, payment("c1", f"P-{i}", f"{10 + i}.00", occurred_at=PAYMENT_TIMES[i]))
    return app


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(PAYMENT_TIMES))))
def test_the_same_payments_in_any_order_give_the_same_balances(order: list[int]) -> None:
    reference = ingest_in_order(list(range(len(PAYMENT_TIMES))))
    shuffled = ingest_in_order(list(order))
    for day in (date(2026, 2, 15), date(2026, 2, 16), date(2026, 3, 5)):
        assert view(shuffled, "balances", day) == view(reference, "balances", day)
    assert compute_view(shuffled, "balances", date(2026, 3, 5)) == compute_view(
        reference, "balances", date(2026, 3, 5)
    )
    # 2026-03-01T00:00+14:00 is 2026-02-28 10:00 UTC; 23:59:59-12:00 is 03-01 11:59:59 UTC.
    assert shuffled.get("c1").last_payment_date == "2026-03-01"


def test_last_payment_date_is_the_latest_payment_not_the_last_processed() -> None:
    app = ingest_in_order([3, 0, 1])  # 02-28 UTC first, then two earlier ones
    assert row_of(app, "balances", date(2026, 3, 5), "c1")["last_payment_date"] == "2026-02-28"
    assert app.get("c1").last_payment_date == "2026-02-28"


def test_a_past_collections_run_recorded_later_does_not_move_last_action_back(
    app: LedgerApplication,
) -> None:
    register(app, "c1")
    apply_all(
        app,
        charge("c1", "CH-1", "100.00", billing_period="2026-01",
               occurred_at="2026-01-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-01", date(2026, 2, 1))  # due 03-03
    apply_all(
        app,
        charge("c1", "CH-2", "40.00", billing_period="2026-02",
               occurred_at="2026-02-07T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-02", date(2026, 2, 8))  # due 03-10
    apply_all(
        app,
        payment("c1", "P-2", "40.00", invoice_id="INV-c1-2026-02",
                occurred_at="2026-04-01T10:00:00Z"),
    )  # fmt: skip
    app.run_collections(date(2026, 4, 10))  # January: reminder, final notice, suspend
    expected = ("suspend", "2026-04-10")
    row = row_of(app, "delinquency", date(2026, 4, 12), "c1")
    assert (row["last_action"], row["last_action_date"]) == expected
    # A run for an earlier day, done afterwards: February was overdue then (a reminder dated
    # 03-25 is recorded after the 04-10 ones). The latest action is still the 04-10 one.
    fired = app.run_collections(date(2026, 3, 25))
    assert [(f["action"], f["invoice_id"]) for f in fired] == [("reminder", "INV-c1-2026-02")]
    row = row_of(app, "delinquency", date(2026, 4, 12), "c1")
    assert (row["last_action"], row["last_action_date"]) == expected


def test_a_suspension_recorded_later_for_an_earlier_day_dates_the_suspension() -> None:
    account = CustomerAccount.register(
        "c1", {"name": "c1", "currency": "USD"},
        Meta(occurred_at=datetime(2026, 1, 1, tzinfo=UTC), recorded_at=RECORDED),
        known_policies={"standard"},
    )  # fmt: skip
    for day, sub in ((10, "s-1"), (3, "s-2")):
        account._emit(
            ev.SubscriptionSuspended,
            {"subscription_id": sub, "policy": "standard", "step": 2, "invoice_id": "I",
             "reinstatement": "paid_in_full", "threshold": "0.00"},
            Meta(occurred_at=datetime(2026, 4, day, tzinfo=UTC), recorded_at=RECORDED),
        )  # fmt: skip
    assert account.suspension is not None and account.suspension.since == date(2026, 4, 3)


def test_escalations_are_listed_in_business_time_order(app: LedgerApplication) -> None:
    register(app, "c1")
    apply_all(app, support_ticket_opened("c1", occurred_at="2026-01-01T10:00:00Z"))
    times = ["2026-01-03T01:00:00+05:00", "2026-01-02T22:00:00-05:00"]  # 01-02 20:00, 01-03 03:00
    order = [1, 0]
    random.Random(7).shuffle(order)
    for i in order:
        apply_all(
            app,
            support_escalated("c1", tag=str(i), microsoft_case_id=f"case-{i}",
                              occurred_at=times[i]),
        )  # fmt: skip
    (ticket,) = compute_view(app, "support", date(2026, 1, 10))
    assert [e["microsoft_case_id"] for e in ticket["escalations"]] == ["case-0", "case-1"]


SOURCES = [
    ("payment", "P-1", "30.00", "2026-02-01T10:00:00Z"),
    ("credit", "CN-1", "50.00", "2026-01-15T10:00:00+02:00"),
    ("payment", "P-2", "20.00", "2026-01-20T23:30:00-05:00"),
    ("credit", "CN-2", "10.00", "2026-01-21T05:00:00Z"),
]


def sources_then_invoice(order: list[int]) -> LedgerApplication:
    """Money arrives before the invoice (as unapplied credit), in the given order; then a
    60.00 invoice (cost 48.00) is issued and settled from it."""
    app = new_app()
    register(app, "c1")
    for i in order:
        kind, source_id, amount, at = SOURCES[i]
        make = payment if kind == "payment" else credit_note
        apply_all(app, make("c1", source_id, amount, occurred_at=at))
    apply_all(
        app,
        charge("c1", "CH-1", "60.00", cost="48.00", billing_period="2026-02",
               occurred_at="2026-02-20T10:00:00Z"),
    )  # fmt: skip
    app.run_invoices("2026-02", date(2026, 3, 1))
    return app


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(SOURCES))))
def test_money_settles_oldest_first_by_business_time_whatever_the_arrival_order(
    order: list[int],
) -> None:
    app = sources_then_invoice(list(order))
    # Oldest first: CN-1 (01-15 08:00 UTC) 50.00, then P-2 (01-21 04:30 UTC) 10.00 of 20.00.
    applied = [
        (e.data["source_id"], e.data["amount"])
        for e in app.stream("c1") if isinstance(e, ev.PaymentApplied)
    ]  # fmt: skip
    assert applied == [("CN-1", "50.00"), ("P-2", "10.00")]
    account = app.get("c1")
    # Left: P-1 30.00 and P-2 10.00 (cash, refundable), CN-2 10.00 (not refundable).
    assert (account.unapplied_credit(), account.refundable_credit()) == (50, 40)
    (row,) = compute_view(app, "remittance", date(2026, 3, 10))
    assert row["collected_from_customers"] == "8.00"  # 48.00 x 10/60
    assert view(app, "balances", date(2026, 3, 10)) == view(
        sources_then_invoice(list(range(len(SOURCES)))), "balances", date(2026, 3, 10)
    )


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_customer_details_are_the_latest_update_whatever_the_arrival_order(
    order: list[int],
) -> None:
    app = new_app({"standard": STANDARD_POLICY, "no-suspend": NO_SUSPEND})
    register(app, "c1")
    updates = [
        customer_updated("c1", tag="old", name="Old Name", payment_terms_days=14,
                         collections_policy="no-suspend",
                         occurred_at="2026-02-01T23:00:00-05:00"),  # 02-02 04:00 UTC
        customer_updated("c1", tag="new", name="New Name", payment_terms_days=45,
                         occurred_at="2026-02-02T06:00:00+01:00"),  # 02-02 05:00 UTC
    ]  # fmt: skip
    for i in order:
        apply_all(app, updates[i])
    account = app.get("c1")
    name = app.personal_value("c1", "name", account.name)  # stored sealed (SPEC §13)
    assert (name, account.payment_terms_days, account.collections_policy) == (
        "New Name", 45, "no-suspend",
    )  # fmt: skip
    row = project_rows(app, "accounts")["c1"]
    assert (row["name"], row["payment_terms_days"], row["policy"]) == (
        "New Name", 45, "no-suspend",
    )  # fmt: skip
