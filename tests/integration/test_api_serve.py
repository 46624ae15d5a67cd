"""`ledger serve` as a user runs it: a real uvicorn process on a loopback port, tokens made
with `ledger tokens create`, data fed with `ledger ingest`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import charge, customer_registered, jsonl

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ledger_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from ledger.cli.main import main; main()", *args]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_API_TOKENS_FILE": str(tmp_path / "tokens.toml"),
        "LEDGER_LOG_FORMAT": "json",
    }


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ledger_command(*args), env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def server(request: pytest.FixtureRequest, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        ledger_command("serve", "--port", str(port), "--workers", str(request.param)),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"ledger serve did not come up: {output}")
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its workers, nothing else
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_ledger_serve_answers_with_tokens_from_the_cli(env: dict[str, str], server: str) -> None:
    run(env, "ingest", "-", stdin=jsonl([customer_registered("c1"), charge("c1", "CH-1", "12.50")]))
    token = run(env, "tokens", "create", "--name", "ops", "--role", "admin").strip()
    auth = {"Authorization": f"Bearer {token}"}

    assert httpx.get(f"{server}/customers/c1/balance").status_code == 401
    balance = httpx.get(f"{server}/customers/c1/balance", headers=auth)
    assert balance.status_code == 200 and balance.json()["unbilled"] == "12.50"
    missing = httpx.get(f"{server}/customers/nobody", headers=auth)
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_customer"
    events = httpx.get(f"{server}/customers/c1/events", headers=auth).json()["items"]
    assert [e["event_type"] for e in events] == ["CustomerRegistered", "ChargePosted"]
    assert httpx.get(f"{server}/openapi.json").json()["info"]["title"] == "CSP billing ledger"
    assert "ledger_api_request_seconds" in httpx.get(f"{server}/metrics").text

    run(env, "tokens", "revoke", "ops")
    assert httpx.get(f"{server}/customers/c1", headers=auth).status_code == 401
