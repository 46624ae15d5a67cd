"""The WHOLE state of a ledger store, in a form two runs of the same input can be compared in
(issue #14: "same input, same ledger").

What "identical" means: two runs of the same input, however interrupted, store
- the same events, in the same global order, on the same streams at the same versions, with
  the same content, except what legitimately depends on WHEN a run recorded them: each
  event's `timestamp` (recorded_at) and, because the hash chain covers recorded_at, its
  `hash` and `prev_hash`; and the ciphertext of sealed personal fields (SPEC §13: each run
  has its own random keys and nonces; their plaintext is compared through the views);
- the same decisions (`ledger_messages`: key, fingerprint, customer, outcome, code, reason,
  source position), except `decided_at`;
- the same dead letters in the same order (code, message, source, position, key, raw bytes),
  except their row `id` and `created_at`;
- the same rows in every view (`ledger show VIEW --json`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from ledger.domain.personal import TOKEN_PREFIX
from tests.helpers import run_cli

VIEWS = ("balances", "delinquency", "remittance", "support", "trial-balance")
RECORDING_TIME = ("timestamp", "hash", "prev_hash")


def _cli_json(database_url: str, cwd: Path, *args: str) -> Any:
    result = run_cli(database_url, *args, cwd=cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr[-2000:])
    return json.loads(result.stdout)


def _rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url[len("sqlite:///") :])
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(database_url) as pg:
        return [tuple(r) for r in pg.execute(sql).fetchall()]  # type: ignore[arg-type]


def stored_events(database_url: str) -> list[tuple[str, int, str, dict[str, Any]]]:
    sqlite = database_url.startswith("sqlite")
    # The library's table: stored_events on SQLite, <application name>_events on PostgreSQL.
    table, order = ("stored_events", "rowid") if sqlite else ("ledger_events", "notification_id")
    found = []
    for originator_id, version, topic, state in _rows(
        database_url,
        f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY {order}",
    ):
        doc = json.loads(bytes(state))
        for name in RECORDING_TIME:
            doc.pop(name, None)
        doc["data"] = _unsealed(doc.get("data"))
        found.append((str(originator_id).replace("-", ""), version, topic, doc))
    return found


def _unsealed(value: Any) -> Any:
    """`value` with every sealed personal field (`enc:v1:<key id>:<ciphertext>`) as one mark."""
    if isinstance(value, dict):
        return {k: _unsealed(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(TOKEN_PREFIX):
        return TOKEN_PREFIX + "<sealed>"
    return value


def _decisions(database_url: str) -> list[tuple[Any, ...]] | None:
    try:
        return _rows(
            database_url,
            "SELECT message_key, fingerprint, customer_id, outcome, code, reason, source,"
            " partition_no, offset_no FROM ledger_messages ORDER BY message_key",
        )
    except Exception as error:  # a store written before ledger_messages existed
        if "ledger_messages" not in str(error):
            raise
        return None


def ledger_state(database_url: str, cwd: Path, *, with_dead_letters: bool = True) -> dict[str, Any]:
    """Everything a run leaves behind, minus what legitimately differs (module doc)."""
    state: dict[str, Any] = {
        "events": stored_events(database_url),
        "decisions": _decisions(database_url),
        "views": {view: _cli_json(database_url, cwd, "show", view, "--json") for view in VIEWS},
    }
    if with_dead_letters:
        letters = _cli_json(database_url, cwd, "deadletters", "list", "--json")
        state["dead_letters"] = [
            {k: v for k, v in letter.items() if k not in ("id", "created_at")} for letter in letters
        ]
    return state


def assert_same_state(got: dict[str, Any], clean: dict[str, Any]) -> None:
    """Part by part, so a failure says which part differs."""
    assert got.keys() == clean.keys()
    for part in clean:
        if part == "views":
            for view in VIEWS:
                assert got["views"][view] == clean["views"][view], view
        elif got[part] is None or clean[part] is None:
            assert got[part] == clean[part], part
        else:
            assert len(got[part]) == len(clean[part]), part
            for mine, theirs in zip(got[part], clean[part], strict=True):
                assert mine == theirs, part
