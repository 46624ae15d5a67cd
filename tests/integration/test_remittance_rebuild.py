"""The remittance view on PostgreSQL: folded in-process from the event store, kept live from
published events in batches (as `ledger project` does), and rebuilt by
`ledger projections rebuild remittance` — all three are the same rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.reconcile import import_recon_file
from ledger.app.views import compute_view, published_events
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from projections.remittance import RemittanceProjection, remittance_view
from projections.store import RowStore, apply_events
from tests.fixtures.recon_gen import generate
from tests.helpers import msgs, payment

pytestmark = pytest.mark.integration

LEDGER_BIN = str(Path(sys.executable).with_name("ledger"))
RECORDED = datetime(2025, 4, 1, 12, 0, tzinfo=UTC)
LOOK = date(2025, 4, 1)


def ledger_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_LEVEL="warning")
    return subprocess.run([LEDGER_BIN, *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def business(app: LedgerApplication) -> None:
    """Two periods of generated charges, invoiced; some customers pay in full, some half,
    some nothing; January reconciled with Microsoft; payments to Microsoft for both."""
    jan = generate(1200, 12, seed=31, period="2025-01")
    feb = generate(800, 12, seed=31, period="2025-02", invoice_number="G012399999",
                   id_prefix="feb-")  # fmt: skip
    assert feb.customers == jan.customers  # same seed: the same tenants, billed again
    feb_messages = [
        m for m in feb.messages
        if not ('"customer_registered"' in m and json.loads(m)["customer_id"] in jan.customers)
    ]  # fmt: skip
    for batch in (jan.messages, feb_messages):
        for start in range(0, len(batch), 500):
            result = app.handle_batch(msgs(batch[start : start + 500]))
            assert result.count("applied") == len(result.outcomes), [
                o.error for o in result.outcomes if o.error
            ][:3]
    app.run_invoices("2025-01", date(2025, 2, 1))
    app.run_invoices("2025-02", date(2025, 3, 1))
    payments = []
    for n, customer in enumerate(sorted(jan.customers)):
        account = app.get(customer)
        owed = account.outstanding()
        share = (Decimal(1), Decimal("0.5"), Decimal(0))[n % 3]
        if owed > 0 and share:
            amount = (owed * share).quantize(Decimal("0.01"))
            payments.append(payment(customer, f"P-{n}", str(amount),
                                    occurred_at="2025-03-10T10:00:00Z"))  # fmt: skip
    assert app.handle_batch(msgs(payments)).count("applied") == len(payments)
    assert import_recon_file(app, jan.csv_bytes, payment_terms_days=60).recorded
    app.pay_microsoft("2025-01", Decimal("5000.00"), "WIRE-JAN", date(2025, 3, 20), "USD")
    app.pay_microsoft("2025-02", Decimal("1000.00"), "WIRE-FEB", date(2025, 3, 25), "USD")


def test_rebuilt_remittance_equals_the_live_and_in_process_views(
    fresh_pg_url: Callable[[], str],
) -> None:
    url = fresh_pg_url()
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    business(app)
    in_process = compute_view(app, "remittance", LOOK)
    assert {r["billing_period"] for r in in_process} == {"2024-12", "2025-01", "2025-02"}
    jan = next(r for r in in_process if (r["billing_period"], r["currency"]) == ("2025-01", "USD"))
    assert jan["microsoft_invoiced"] is not None and jan["paid_to_microsoft"] == "5000.00"
    assert Decimal(jan["collected_from_customers"]) > 0

    # Live: published events in uneven batches, one transaction each, one batch redelivered.
    db = Database(url)
    store = RowStore(db)
    projection = RemittanceProjection()
    events = list(published_events(app))
    position, sizes = 0, [97, 250, 13, 500]
    while position < len(events):
        batch = events[position : position + sizes[position % 4]]
        apply_events(store, projection, batch)
        db.commit()
        if position == 0:
            assert apply_events(store, projection, batch) == 0  # redelivered: skipped
            db.commit()
        position += len(batch)
    live_rows = store.load_all("remittance")
    db.commit()
    assert remittance_view(live_rows) == in_process

    store.clear("remittance")  # so the rows below can only come from the rebuild
    db.commit()
    done = ledger_cli(url, "projections", "rebuild", "remittance")
    assert done.returncode == 0, done.stderr
    rebuilt_rows = store.load_all("remittance")
    db.commit()
    assert rebuilt_rows == live_rows
    assert remittance_view(rebuilt_rows) == in_process

    shown = ledger_cli(url, "show", "remittance", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == in_process
    verified = ledger_cli(url, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout
    db.close()
