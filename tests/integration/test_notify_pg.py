"""`ledger notify` with its outbox in PostgreSQL, sending to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from ledger.bootstrap import build_app
from ledger.config import Settings
from tests.helpers import charge, customer_registered, msgs
from tests.unit.test_notify import env_for, ledger, smtp  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration


def test_outbox_on_postgresql_sends_once(smtp, fresh_pg_url, tmp_path):  # noqa: F811
    inbox, smtp_url = smtp
    url = fresh_pg_url()
    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    raws = []
    for i in range(5):
        raws += [customer_registered(f"pg-{i}"), charge(f"pg-{i}", "CH-1", "99.00")]
    app.handle_batch(msgs(raws))
    app.run_invoices("2025-01", date(2025, 2, 1))
    env = env_for(tmp_path, url, smtp_url)
    for _ in range(2):
        done = ledger(env, "notify", "--once")
        assert done.returncode == 0, done.stderr
    ids = inbox.ids()
    assert len(ids) == 5 and set(ids.values()) == {1}
    status = json.loads(ledger(env, "notify", "status", "--json").stdout)
    assert status["counts"]["sent"] == 5
