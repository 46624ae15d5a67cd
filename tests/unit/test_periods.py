"""Closed periods (SPEC §13): close January, post a January-dated credit note in February —
January's trial balance is unchanged, the credit note posts on 1 February, the stored event
keeps its business date; an invoice run for January is refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from ledger.domain.periods import posting_date
from tests.helpers import charge, credit_note, customer_registered, jsonl, run_cli


def test_posting_date_moves_to_the_first_day_of_the_first_open_period() -> None:
    assert posting_date(date(2025, 1, 20), set()) == date(2025, 1, 20)
    assert posting_date(date(2025, 1, 20), {"2025-01"}) == date(2025, 2, 1)
    assert posting_date(date(2025, 1, 20), {"2025-01", "2025-02"}) == date(2025, 3, 1)
    assert posting_date(date(2025, 12, 31), {"2025-12"}) == date(2026, 1, 1)
    assert posting_date(date(2025, 2, 3), {"2025-01"}) == date(2025, 2, 3)


def ok(url: str, *args: str, cwd: Path, stdin: str | None = None) -> str:
    result = run_cli(url, *args, cwd=cwd, stdin=stdin)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def trial_balance(url: str, day: str, cwd: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(
        ok(url, "show", "trial-balance", "--as-of", day, "--json", cwd=cwd)
    )
    return rows


def test_a_closed_month_keeps_its_trial_balance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lines = [customer_registered("contoso"), charge("contoso", "C-1", "100.00")]
    ok(url, "ingest", "-", stdin=jsonl(lines), cwd=tmp_path)
    ok(url, "invoice", "run", "--period", "2025-01", "--date", "2025-01-31", cwd=tmp_path)
    january = trial_balance(url, "2025-01-31", tmp_path)
    assert january, "January has postings"

    assert "closed 2025-01" in ok(url, "period", "close", "2025-01", cwd=tmp_path)
    assert "closed already" in ok(url, "period", "close", "2025-01", cwd=tmp_path)
    # In February, a credit note dated in January.
    note = credit_note("contoso", "CN-1", "10.00", occurred_at="2025-01-20T12:00:00Z")
    ok(url, "ingest", "-", stdin=jsonl([note]), cwd=tmp_path)

    assert trial_balance(url, "2025-01-31", tmp_path) == january
    february = trial_balance(url, "2025-02-01", tmp_path)
    assert february != january
    debits = {r["account"]: Decimal(r["debit"]) for r in january}
    moved = {r["account"]: Decimal(r["debit"]) - debits.get(r["account"], Decimal(0))
             for r in february}  # fmt: skip
    assert moved["revenue"] == Decimal("10.00"), moved  # the credit note, on 1 February
    # The stored event keeps its business date.
    from ledger.bootstrap import build_app
    from ledger.config import Settings

    events = build_app(Settings(database_url=url)).stream("contoso")
    issued = [e for e in events if type(e).__name__ == "CreditNoteIssued"]
    assert [e.occurred_at.date() for e in issued] == [date(2025, 1, 20)]
    # The closed period is listed; an invoice run for it is refused.
    listed = json.loads(ok(url, "period", "list", "--json", cwd=tmp_path))
    assert [r["period"] for r in listed] == ["2025-01"]
    refused = run_cli(url, "invoice", "run", "--period", "2025-01", cwd=tmp_path)
    assert refused.returncode == 1
    assert "period 2025-01 is closed" in refused.stderr
    # Chains (the periods stream too) still verify; balances show no `ledger:periods` row.
    assert "every chain intact" in ok(url, "audit", "verify", cwd=tmp_path)
    balances = json.loads(ok(url, "show", "balances", "--json", cwd=tmp_path))
    assert [r["customer_id"] for r in balances] == ["contoso"]
