"""Business time and recording time (SPEC §13). A payment dated 5 February is recorded on
20 February, after a credit note of 10 February settled the invoice:

- the view as of 10 February (business time) changes once the payment is recorded;
- the view as recorded at 10 February (recording time) never changes;
- each equals an independent replay: a ledger that received, in business order, only what
  the view is about;
- at no as-of date does a customer show open invoices and unapplied credit together."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.app.application import LedgerApplication
from ledger.app.views import compute_view
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import charge, credit_note, customer_registered, jsonl, msg, payment, run_cli
from tests.unit.test_api import build_api


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 2, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def feb(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 2, day, hour, 0, tzinfo=UTC)


REGISTER = customer_registered("contoso", occurred_at="2025-01-15T10:00:00Z")
CHARGE = charge("contoso", "C-1", "100.00", occurred_at="2025-01-15T10:00:00Z")
NOTE = credit_note("contoso", "CN-1", "100.00", occurred_at="2025-02-10T12:00:00Z")
PAYMENT = payment("contoso", "PAY-1", "100.00", occurred_at="2025-02-05T12:00:00Z")


def ledger(clock: Clock) -> LedgerApplication:
    return LedgerApplication(eventsourcing_env("memory://"), clock=clock)


def apply(app: LedgerApplication, *raws: str) -> None:
    outcomes = app.handle_batch([msg(r) for r in raws]).outcomes
    assert all(o.status == "applied" for o in outcomes), outcomes


def as_of(app: LedgerApplication, day: date) -> list[dict[str, Any]]:
    return compute_view(app, "balances", day, historical=True)


def as_recorded(app: LedgerApplication, instant: datetime) -> list[dict[str, Any]]:
    return compute_view(app, "balances", instant.date(), recorded_at=instant)


def live(app: LedgerApplication, day: date) -> list[dict[str, Any]]:
    return compute_view(app, "balances", day)


def recorded_as_it_happened() -> tuple[LedgerApplication, Clock]:
    clock = Clock()
    app = ledger(clock)
    apply(app, REGISTER, CHARGE)
    app.run_invoices("2025-01", date(2025, 2, 1))
    clock.now = feb(10)
    apply(app, NOTE)
    clock.now = feb(15)
    return app, clock


def test_backdated_payment_changes_as_of_but_not_as_recorded() -> None:
    app, clock = recorded_as_it_happened()
    day10, instant10 = date(2025, 2, 10), feb(10, 23)
    before_as_of, before_recorded = as_of(app, day10), as_recorded(app, instant10)
    assert before_as_of == before_recorded  # nothing backdated yet

    clock.now = feb(20)
    apply(app, PAYMENT)  # dated 5 February, recorded on the 20th

    after_as_of = as_of(app, day10)
    assert after_as_of != before_as_of
    assert after_as_of[0]["paid"] == "100.00" and before_as_of[0]["paid"] == "0.00"
    assert as_recorded(app, instant10) == before_recorded

    # Independent replays. As recorded at day 10: a ledger that only ever received what had
    # been recorded by then, shown live on day 10.
    clock10 = Clock()
    then = ledger(clock10)
    apply(then, REGISTER, CHARGE)
    then.run_invoices("2025-01", date(2025, 2, 1))
    clock10.now = feb(10)
    apply(then, NOTE)
    assert live(then, day10) == before_recorded
    # As of day 10: a ledger that received everything in business order.
    clock_b = Clock()
    ordered = ledger(clock_b)
    apply(ordered, REGISTER, CHARGE)
    ordered.run_invoices("2025-01", date(2025, 2, 1))
    clock_b.now = feb(5)
    apply(ordered, PAYMENT)
    clock_b.now = feb(10)
    apply(ordered, NOTE)
    assert as_of(ordered, day10) == after_as_of


def test_no_as_of_date_shows_open_invoices_and_unapplied_credit_together() -> None:
    app, clock = recorded_as_it_happened()
    clock.now = feb(20)
    apply(app, PAYMENT)
    day = date(2025, 1, 14)
    while day <= date(2025, 3, 31):
        for row in as_of(app, day):
            both = Decimal(row["outstanding"]) > 0 and Decimal(row["unapplied_credit"]) > 0
            assert not both, (day, row)
        day += timedelta(days=1)
    # 7 February: the payment (5th) settles the invoice (1st); the note (10th) is not yet.
    row = as_of(app, date(2025, 2, 7))[0]
    assert (row["outstanding"], row["unapplied_credit"]) == ("0.00", "0.00")


def test_the_api_takes_as_recorded_at_and_never_shows_both(tmp_path: Path) -> None:
    app, clock = recorded_as_it_happened()
    instant10 = feb(10, 23)
    before = as_recorded(app, instant10)[0]
    clock.now = feb(20)
    apply(app, PAYMENT)
    api = build_api(tmp_path, app)

    assert api.ok("/customers/contoso/balance", as_recorded_at="2025-02-10T23:00:00Z") == before
    listed = api.ok("/delinquency", as_recorded_at="2025-02-10T23:00:00+00:00")
    assert listed["items"] == compute_view(app, "delinquency", date(2025, 2, 10),
                                           recorded_at=instant10)  # fmt: skip
    seventh = api.ok("/customers/contoso/balance", as_of="2025-02-07")
    assert (seventh["outstanding"], seventh["unapplied_credit"]) == ("0.00", "0.00")
    bad = api.get("/customers/contoso/balance", as_recorded_at="2025-02-10")
    assert bad.status_code == 422 and "as_recorded_at" in bad.text


def test_cli_show_as_recorded_at_shows_what_it_showed_then(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    def ok(*args: str, stdin: str | None = None) -> str:
        result = run_cli(url, *args, stdin=stdin, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    ok("ingest", "-", stdin=jsonl([REGISTER, CHARGE]))
    then = datetime.now(UTC).isoformat()
    shown = ok("show", "balances", "--json")
    ok("ingest", "-", stdin=jsonl([PAYMENT]))
    assert ok("show", "balances", "--json") != shown
    assert ok("show", "balances", "--json", "--as-recorded-at", then) == shown
    refused = run_cli(url, "show", "balances", "--as-recorded-at", "2025-02-10", cwd=tmp_path)
    assert refused.returncode == 2 and "--as-recorded-at" in refused.stderr


def test_an_instant_beyond_the_calendar_is_a_usage_error_not_a_crash(tmp_path: Path) -> None:
    app, _ = recorded_as_it_happened()
    api = build_api(tmp_path, app)
    for bad in ("0001-01-01T00:00+01:00", "9999-12-31T23:59+00:00", "2025-13-01T00:00Z"):
        response = api.get("/trial-balance", as_recorded_at=bad)
        assert response.status_code == 422 and "as_recorded_at" in response.text, bad
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    refused = run_cli(url, "show", "balances", "--as-recorded-at", "0001-01-01T00:00+01:00")
    assert refused.returncode == 2 and "--as-recorded-at" in refused.stderr
