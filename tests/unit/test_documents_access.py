"""`ledger documents …` and the document endpoints (SPEC §14), over the demo's store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest
from fastapi.testclient import TestClient

from ledger.api import create_app
from ledger.config import Settings
from ledger.store import tokens
from tests.unit.test_documents_render import demo_app  # noqa: F401  (a fixture)

LEDGER = str(Path(sys.executable).with_name("ledger"))


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    full_env.update(env)
    return subprocess.run([LEDGER, *args], cwd=cwd, env=full_env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("cli")
    assert run(["demo"], where).returncode == 0
    return where


def text_of(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_cli_invoice_and_statement(demo_db: Path) -> None:
    env = {"LEDGER_DATABASE_URL": "sqlite:///ledger-demo.db"}
    done = run(["documents", "invoice", "INV-tenant-001-2026-01", "-o", "inv.pdf"], demo_db, **env)
    assert done.returncode == 0, done.stderr
    assert "INV-tenant-001-2026-01" in text_of((demo_db / "inv.pdf").read_bytes())
    html = run(["documents", "invoice", "INV-tenant-001-2026-01", "--format", "html"], demo_db,
               **env)  # fmt: skip
    assert b"<h1>Invoice INV-tenant-001-2026-01</h1>" in html.stdout
    body = run(["documents", "statement", "tenant-001", "--to", "2026-03-31", "--format", "json"],
               demo_db, **env)  # fmt: skip
    statement = json.loads(body.stdout)
    shown = run(["show", "balances", "--as-of", "2026-03-31", "--json"], demo_db, **env)
    balance = next(r for r in json.loads(shown.stdout) if r["customer_id"] == "tenant-001")
    assert statement["closing_balance"] == balance["balance"]
    missing = run(["documents", "invoice", "INV-nobody-2026-01"], demo_db, **env)
    assert missing.returncode == 1 and b"invoice_id: 'INV-nobody-2026-01'" in missing.stderr
    wrong = run(["documents", "statement", "tenant-001", "--format", "xml"], demo_db, **env)
    assert wrong.returncode == 2 and b"--format" in wrong.stderr
    bad_profile = run(["documents", "invoice", "INV-tenant-001-2026-01", "-o", "x.pdf"], demo_db,
                      LEDGER_PARTNER_PROFILE=str(demo_db / "none.toml"), **env)  # fmt: skip
    assert bad_profile.returncode == 1 and b"LEDGER_PARTNER_PROFILE" in bad_profile.stderr


def test_api_documents(demo_app, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "tokens.toml"
    reader = tokens.create(path, "reader-1", "reader")
    client = TestClient(create_app(Settings(api_tokens_file=path), demo_app))
    auth = {"Authorization": f"Bearer {reader}"}
    url = "/customers/tenant-001/invoices/INV-tenant-001-2026-01/document"
    assert client.get(url).status_code == 401
    got = client.get(url, headers=auth)
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    assert "Total USD 6,840.00" in text_of(got.content)
    assert client.get(url.replace("INV-tenant-001", "INV-tenant-002"), headers=auth).status_code \
        == 404  # fmt: skip
    st = client.get("/customers/tenant-001/statement?from=2026-02-01&to=2026-03-31", headers=auth)
    assert st.status_code == 200, st.text
    assert st.json()["to"] == "2026-03-31" and st.json()["lines"]
    pdf = client.get("/customers/tenant-001/statement", headers={**auth, "Accept": PDF})
    assert pdf.headers["content-type"] == PDF and "Statement of account" in text_of(pdf.content)
    assert client.get("/customers/nobody/statement", headers=auth).status_code == 404
    assert client.get("/customers/tenant-001/statement?to=0", headers=auth).status_code == 422
    assert client.get("/customers/tenant-001/statement?extra=1", headers=auth).status_code == 422


PDF = "application/pdf"


def test_demo_writes_and_names_sample_documents(demo_db: Path) -> None:
    names = {
        "ledger-demo-invoice-INV-tenant-001-2026-01.pdf": "Invoice INV-tenant-001-2026-01",
        "ledger-demo-statement-tenant-001.pdf": "Statement of account",
        "ledger-demo-notice-suspended-tenant-001.pdf": "Your subscription is suspended",
    }
    for name, title in names.items():
        assert title in text_of((demo_db / name).read_bytes())
    out = run(["demo"], demo_db).stdout.decode()
    assert out.rstrip().endswith("\n".join(f"  {n}" for n in names))
    assert "Balances" in out and "hash chains intact" in out
