"""Authenticated checkpoints (SPEC §13): what the hash chains alone cannot see — the newest
events of a stream deleted, a whole stream deleted, events rewritten and re-hashed — and a
forged or altered checkpoint, each detected and named by `ledger audit verify` (exit 1), on
SQLite and on PostgreSQL. Every tamper here passes the chain checks, as the first assertion of
each test shows: these are the cases the checkpoints exist for."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest

from ledger.domain.account import account_id
from ledger.domain.hashchain import chain_hash_v2
from ledger.domain.merkle import merkle_root
from tests.helpers import LEDGER_CLI
from tests.integration.test_audit_tamper import VICTIM, Ledger, built, ok, verify

pytestmark = pytest.mark.integration
__all__ = ["built"]  # the fixture, shared with the chain tamper suite

KEY = "7f" * 32
OTHER_KEY = "01" * 32


def cli(url: str, *args: str, key: str | None = KEY, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`ledger …` on `url` only, with LEDGER_AUDIT_KEY = key (unset when None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_LOG_FORMAT="json")
    if key is not None:
        env["LEDGER_AUDIT_KEY"] = key
    return subprocess.run([LEDGER_CLI, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture
def checkpointed(built: Ledger, tmp_path: Path) -> tuple[str, Path, object]:
    url, table = built
    out = tmp_path / "checkpoints.jsonl"
    ok(cli(url, "audit", "checkpoint", "--out", str(out)))
    return url, out, table


def chains_intact(url: str) -> bool:
    return "every chain intact" in verify(url).stdout


def failed(url: str, out: Path, key: str | None = KEY) -> str:
    result = cli(url, "audit", "verify", "--checkpoints", str(out), key=key)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result.stdout


def test_untouched_store_verifies_against_its_checkpoint(checkpointed: tuple) -> None:
    url, out, _ = checkpointed
    line = json.loads(out.read_text().splitlines()[0])
    assert line["stream_count"] == 2 and line["event_count"] == 11
    assert line["global_position"] == 11
    assert {s[1] for s in line["streams"]} == {"contoso", VICTIM}
    result = cli(url, "audit", "verify", "--checkpoints", str(out))
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "OK: 11 events verified" in result.stdout
    assert "OK: 1 checkpoints verified" in result.stdout


def test_deleted_newest_event_of_a_stream_is_named(checkpointed: tuple) -> None:
    url, out, table = checkpointed
    table.delete(VICTIM, 6)
    assert chains_intact(url)  # the chains alone cannot see it

    stdout = failed(url, out)
    assert f"TAMPERED: events_deleted: stream {VICTIM}" in stdout
    assert "now at version 5" in stdout and "had version 6" in stdout


def test_deleted_stream_is_named(checkpointed: tuple) -> None:
    url, out, table = checkpointed
    for position in range(1, 6):
        table.delete("contoso", position)
    assert chains_intact(url)

    stdout = failed(url, out)
    assert "TAMPERED: stream_deleted: stream contoso" in stdout
    assert VICTIM not in stdout.split("TAMPERED")[1]


def rehash(table: object, position: int, change: dict[str, str]) -> None:
    """Rewrite event `position` of the victim's stream (InvoiceIssued) and re-hash it and
    every later event, as someone with write access and the (public) hash rule would."""
    types = {5: "InvoiceIssued", 6: "PaymentApplied"}
    states = table.states(VICTIM)  # type: ignore[attr-defined]
    prev = json.loads(states[position - 1])["hash"]
    for pos in range(position, max(states) + 1):
        state = json.loads(states[pos])
        if pos == position:
            state["data"].update(change)
        state["prev_hash"] = prev
        state["hash"] = chain_hash_v2(
            stream_id=UUID(str(account_id(VICTIM))), position=pos, event_type=types[pos],
            customer_id=state["customer_id"],
            occurred_at=datetime.fromisoformat(state["occurred_at"]["_data_"]),
            recorded_at=datetime.fromisoformat(state["timestamp"]["_data_"]),
            message_id=state["message_id"], originator_topic=None, data=state["data"],
            prev_hash=prev,
        )  # fmt: skip
        prev = state["hash"]
        table.set_state(VICTIM, pos, json.dumps(state, separators=(",", ":")).encode())  # type: ignore[attr-defined]


def test_rewritten_and_rehashed_events_are_named(checkpointed: tuple) -> None:
    url, out, table = checkpointed
    rehash(table, 5, {"total": "1.50"})
    assert chains_intact(url)  # re-hashed: every chain is intact

    stdout = failed(url, out)
    assert f"TAMPERED: events_rewritten: stream {VICTIM}" in stdout
    assert "contoso" not in stdout.split("TAMPERED")[1]


def test_altered_checkpoint_line_is_named_as_forged(checkpointed: tuple, tmp_path: Path) -> None:
    url, out, table = checkpointed
    # Cover a truncation: the victim's stream listed at version 5 (root recomputed), in the
    # file and in the database row, without the key.
    table.delete(VICTIM, 6)
    line = json.loads(out.read_text())
    from ledger.domain.merkle import StreamHead

    for item in line["streams"]:
        if item[1] == VICTIM:
            item[2] = 5
            item[3] = json.loads(table.states(VICTIM)[5])["hash"]
    line["event_count"] -= 1
    line["merkle_root"] = merkle_root([StreamHead(*s) for s in line["streams"]])
    out.write_text(json.dumps(line) + "\n")
    _overwrite_stored_line(url, line)

    stdout = failed(url, out)
    assert f"TAMPERED: bad_hmac: checkpoint {line['checkpoint_id']}" in stdout
    assert "forged or altered" in stdout
    # With the wrong key every line is refused too.
    assert "bad_hmac" in failed(url, out, key=OTHER_KEY)


def _overwrite_stored_line(url: str, line: dict[str, object]) -> None:
    from ledger.store.db import Database

    db = Database(url)
    db.execute("UPDATE audit_checkpoints SET line = %s", (json.dumps(line),))
    db.commit()
    db.close()


def test_deleting_the_stored_checkpoints_does_not_hide_a_truncation(checkpointed: tuple) -> None:
    from ledger.store.db import Database

    url, out, table = checkpointed
    table.delete(VICTIM, 6)
    db = Database(url)
    db.execute("DELETE FROM audit_checkpoints")
    db.commit()
    db.close()
    assert "NOTE: no checkpoint" in ok(cli(url, "audit", "verify"))

    assert "events_deleted" in failed(url, out)


def test_without_the_key_verify_says_what_it_cannot_prove(checkpointed: tuple) -> None:
    url, out, _ = checkpointed
    result = cli(url, "audit", "verify", "--checkpoints", str(out), key=None)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "OK: 11 events verified" in result.stdout
    assert "UNPROVEN: LEDGER_AUDIT_KEY is not set" in result.stdout


def test_checkpoint_needs_a_well_formed_key(built: Ledger, tmp_path: Path) -> None:
    url, _ = built
    missing = cli(url, "audit", "checkpoint", key=None)
    assert missing.returncode == 1 and "LEDGER_AUDIT_KEY is not set" in missing.stderr
    for bad in ("not-hex", "ab" * 16):
        for command in (("audit", "checkpoint"), ("audit", "verify")):
            result = cli(url, *command, key=bad)
            assert result.returncode == 1, (command, result.stdout, result.stderr)
            assert "LEDGER_AUDIT_KEY" in result.stderr
