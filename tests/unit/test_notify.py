"""`ledger notify` (SPEC §14) against a REAL SMTP server on loopback (aiosmtpd): every
document delivered exactly once, even when the sender is SIGKILLed mid-batch; 4xx retried
with backoff, 5xx kept with the reason, customers without email listed."""

from __future__ import annotations

import email
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from ledger.bootstrap import build_app
from ledger.config import ConfigError, Settings
from ledger.documents.outbox import message_id_for, parse_smtp_url
from tests.helpers import charge, customer_registered, msgs
from tests.unit.test_documents_profile import GOOD

LEDGER = str(Path(sys.executable).with_name("ledger"))
FROM = "billing@contoso.test"


class Inbox:
    """aiosmtpd handler: keeps every accepted message; refuses by recipient on request."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.refuse: dict[str, str] = {}  # recipient -> reply (e.g. "550 no such user")
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK queued"

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(str(m["Message-ID"]) for m in self.messages)


@pytest.fixture
def smtp() -> Any:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def make_store(path: Path, customers: int, email_of: Any = None) -> str:
    url = f"sqlite:///{path / 'ledger.db'}"
    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    raws = []
    for i in range(customers):
        cid = f"cust-{i:04d}"
        extra = {} if email_of is None else {"email": email_of(i)}
        raws += [customer_registered(cid, **extra), charge(cid, "CH-1", "120.00")]
    for start in range(0, len(raws), 200):
        app.handle_batch(msgs(raws[start : start + 200]))
    app.run_invoices("2025-01", date(2025, 2, 1))
    return url


def env_for(tmp_path: Path, url: str, smtp_url: str) -> dict[str, str]:
    profile = tmp_path / "partner.toml"
    profile.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_SMTP_URL=smtp_url, LEDGER_MAIL_FROM=FROM,
               LEDGER_PARTNER_PROFILE=str(profile), LEDGER_LOG_FORMAT="json")  # fmt: skip
    return env


def ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEDGER, *args], env=env, capture_output=True, text=True, timeout=300)


def test_sigkill_mid_batch_then_restart_delivers_each_document_once(smtp, tmp_path):
    inbox, smtp_url = smtp
    url = make_store(tmp_path, 500)
    env = env_for(tmp_path, url, smtp_url)
    proc = subprocess.Popen([LEDGER, "notify", "--once"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while sum(inbox.ids().values()) < 120 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = sum(inbox.ids().values())
    assert 0 < before < 500, "killed in the middle of the batch"
    done = ledger(env, "notify", "--once")
    assert done.returncode == 0, done.stderr
    ids = inbox.ids()
    assert len(ids) == 500 and set(ids.values()) == {1}, ids.most_common(3)
    expected = {message_id_for(f"invoice:cust-{i:04d}:INV-cust-{i:04d}-2025-01", FROM)
                for i in range(500)}  # fmt: skip
    assert set(ids) == expected
    message = inbox.messages[0]
    assert message["From"] == f"Contoso Cloud Partner Ltd <{FROM}>"
    pdfs = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].get_payload(decode=True).startswith(b"%PDF")
    again = ledger(env, "notify", "--once")
    assert "sent 0" in again.stdout and sum(inbox.ids().values()) == 500
    status = json.loads(ledger(env, "notify", "status", "--json").stdout)
    assert status["counts"]["sent"] == 500 and not status["pending"]
    # Killed after the final "." and before the reply was read: delivered, listed for a person.
    assert len(status["unconfirmed"]) <= 1


def test_temporary_retried_permanent_kept_missing_email_listed(smtp, tmp_path):
    inbox, smtp_url = smtp
    emails = {0: "ok@example.com", 1: "busy@example.com", 2: "gone@example.com", 3: ""}
    url = make_store(tmp_path, 4, lambda i: emails[i] or None)
    env = env_for(tmp_path, url, smtp_url)
    inbox.refuse = {"busy@example.com": "451 4.3.0 try again later",
                    "gone@example.com": "550 5.1.1 no such user"}  # fmt: skip
    first = ledger(env, "notify", "--once", "--backoff", "20")
    assert first.returncode == 0, first.stderr
    assert "sent 1, to retry 1, failed 1, customers without email 1" in first.stdout
    status = json.loads(ledger(env, "notify", "status", "--json").stdout)
    assert status["customers_without_email"] == ["cust-0003"]
    assert [r["document_id"] for r in status["failed"]] == [
        "invoice:cust-0002:INV-cust-0002-2025-01"
    ]
    assert "550 5.1.1 no such user" in status["failed"][0]["last_error"]
    assert "451" in status["pending"][0]["last_error"]
    text = ledger(env, "notify", "status").stdout
    assert "no email: customer cust-0003" in text and "failed: invoice:cust-0002" in text
    inbox.refuse = {}
    assert "sent 0" in ledger(env, "notify", "--once").stdout  # not due yet: backoff
    pending = status["pending"][0]
    waited = datetime.fromisoformat(pending["next_attempt_at"]) - datetime.now(UTC)
    assert timedelta(seconds=5) < waited <= timedelta(seconds=20)
    with sqlite3.connect(tmp_path / "ledger.db") as conn:  # the 20 s pass
        conn.execute("UPDATE document_outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'"
                     " WHERE status = 'pending'")  # fmt: skip
    assert "sent 1," in ledger(env, "notify", "--once").stdout
    assert sorted(inbox.ids().values()) == [1, 1]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (None, "not set"),
        ("http://mail:25", "smtp://"),
        ("smtp://u:p@mail.example:25", "in clear"),
        ("smtp://mail:25?tls=1", "unknown parameter 'tls'"),
        ("smtp://mail:99999", "port"),
    ],
)
def test_smtp_url_mistakes_fail_closed(url, named):
    with pytest.raises(ConfigError, match="LEDGER_SMTP_URL") as caught:
        parse_smtp_url(url)
    assert named in str(caught.value)


def test_smtps_and_starttls_urls():
    assert parse_smtp_url("smtps://u:p%40x@mail.example").port == 465
    target = parse_smtp_url("smtp://u:p@mail.example:587?starttls=require")
    assert (target.username, target.password, target.starttls) == ("u", "p", "require")


def test_one_sender_per_database(smtp, tmp_path):
    import fcntl

    _inbox, smtp_url = smtp
    url = make_store(tmp_path, 1)
    env = env_for(tmp_path, url, smtp_url)
    with open(tmp_path / "ledger.db.notify.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = ledger(env, "notify", "--once")
        assert busy.returncode == 1 and "another `ledger notify` is running" in busy.stderr
    assert "sent 1," in ledger(env, "notify", "--once").stdout


def test_skip_existing_mails_only_documents_issued_afterwards(smtp, tmp_path):
    inbox, smtp_url = smtp
    url = make_store(tmp_path, 3, email_of=lambda i: f"c{i}@example.com")
    env = env_for(tmp_path, url, smtp_url)
    skipped = ledger(env, "notify", "skip-existing")
    assert skipped.returncode == 0, skipped.stderr
    assert "passed over" in skipped.stdout and not skipped.stdout.startswith("notify: 0 ")
    again = ledger(env, "notify", "skip-existing")
    assert again.stdout.startswith("notify: 0 "), "the position never moves twice"
    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    app.handle_batch(msgs([charge("cust-0001", "CH-2", "80.00")]))
    app.run_invoices("2025-02", date(2025, 3, 1))
    done = ledger(env, "notify", "--once")
    assert done.returncode == 0, done.stderr
    assert set(inbox.ids()) == {message_id_for("invoice:cust-0001:INV-cust-0001-2025-02", FROM)}
