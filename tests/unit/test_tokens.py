"""API tokens: stored as SHA-256 only, verified in constant time, managed by `ledger tokens`."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ledger.store import tokens


def test_create_stores_only_the_sha256_and_returns_the_token_once(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    token = tokens.create(path, "billing-portal", "reader")
    text = path.read_text(encoding="utf-8")
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    entry = tomllib.loads(text)["tokens"][0]
    assert (entry["name"], entry["role"]) == ("billing-portal", "reader")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token.startswith("lgr_") and len(token) > 40
    assert tokens.create(path, "other", "reader") != token


def test_verify_finds_the_record_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    admin = tokens.create(path, "ops", "admin")
    auditor = tokens.create(path, "audit", "auditor")
    records = tokens.load(path)
    assert tokens.verify(records, admin) == records[0]
    assert tokens.verify(records, auditor) == records[1]
    assert tokens.verify(records, admin + "x") is None
    assert tokens.verify(records, "") is None
    assert tokens.verify([], admin) is None


def test_roles_include_the_lower_ones() -> None:
    record = {role: tokens.TokenRecord("t", role, "0" * 64) for role in tokens.ROLES}
    assert record["reader"].allows("reader") and not record["reader"].allows("auditor")
    assert record["auditor"].allows("reader") and not record["auditor"].allows("admin")
    assert all(record["admin"].allows(role) for role in tokens.ROLES)


def test_duplicate_names_unknown_roles_and_bad_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    tokens.create(path, "ops", "admin")
    with pytest.raises(tokens.DuplicateName, match="'ops'"):
        tokens.create(path, "ops", "reader")
    with pytest.raises(tokens.UnknownRole, match="role"):
        tokens.create(path, "x", "root")
    with pytest.raises(tokens.InvalidName, match="name"):
        tokens.create(path, "has space", "reader")
    assert [r.name for r in tokens.load(path)] == ["ops"]


def test_revoke_removes_only_that_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    keep = tokens.create(path, "keep", "reader")
    gone = tokens.create(path, "gone", "reader")
    assert tokens.revoke(path, "gone").name == "gone"
    records = tokens.load(path)
    assert tokens.verify(records, gone) is None and tokens.verify(records, keep) is not None
    with pytest.raises(tokens.UnknownName):
        tokens.revoke(path, "gone")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[[tokens]\n", "not valid TOML"),
        ('tokens = "x"\n', "array of tables"),
        ('[[tokens]]\nname = "a"\nrole = "root"\nsha256 = "' + "0" * 64 + '"\n', "role"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\nsha256 = "abc"\n', "sha256"),
        ('[[tokens]]\nrole = "admin"\nsha256 = "' + "0" * 64 + '"\n', "name"),
        ('[[tokens]]\nname = "a"\nrole = "admin"\nsha256 = "' + "0" * 64 + '"\n'
         '[[tokens]]\nname = "a"\nrole = "reader"\nsha256 = "' + "1" * 64 + '"\n',
         "more than once"),
    ],
)  # fmt: skip
def test_a_bad_file_is_reported_with_what_is_wrong(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(tokens.TokenFileError, match=complaint):
        tokens.load(path)


def test_a_hand_written_file_in_the_spec_format_works(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    token = "my own secret"
    path.write_text(
        f'[[tokens]]\nname = "manual"\nrole = "auditor"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n',
        encoding="utf-8",
    )
    record = tokens.TokenFile(path).verify(token)
    assert record is not None and record.role == "auditor"


def test_token_file_follows_changes_and_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "tokens.toml"
    watched = tokens.TokenFile(path)
    assert watched.records() == []  # no file yet: nobody gets in
    token = tokens.create(path, "ops", "admin")
    assert watched.verify(token) is not None
    path.write_text("not toml [", encoding="utf-8")
    assert watched.verify(token) is None and watched.error


# ---- the CLI --------------------------------------------------------------------------------


def ledger(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGER_API_TOKENS_FILE": str(tmp_path / "tokens.toml"),
           "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", "from ledger.cli.main import main; main()", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_create_list_revoke(tmp_path: Path) -> None:
    created = ledger(tmp_path, "tokens", "create", "--name", "portal", "--role", "reader")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("lgr_") and "\n" not in token  # the token alone, for scripts
    assert "not shown again" in created.stderr
    assert token not in (tmp_path / "tokens.toml").read_text(encoding="utf-8")

    duplicate = ledger(tmp_path, "tokens", "create", "--name", "portal", "--role", "admin")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    unknown_role = ledger(tmp_path, "tokens", "create", "--name", "x", "--role", "root")
    assert unknown_role.returncode == 2 and "--role" in unknown_role.stderr

    listed = ledger(tmp_path, "tokens", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"]) for r in rows] == [("portal", "reader")]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert digest not in listed.stdout and token not in listed.stdout
    table = ledger(tmp_path, "tokens", "list")
    assert "portal" in table.stdout and digest[:16] not in table.stdout

    revoked = ledger(tmp_path, "tokens", "revoke", "portal")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    again = ledger(tmp_path, "tokens", "revoke", "portal")
    assert again.returncode == 1 and "no token named 'portal'" in again.stderr
