"""Configuration mistakes fail closed with one clear line on stderr and exit 1 (SPEC §9), for
every command that opens the store: a database URL whose directory does not exist, an
unsupported scheme, a file that is not SQLite, a directory; a bad policy file, tokens file,
Kafka bootstrap or settings value. Before, each printed a 37-197 line traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import ConfigError, check_database_url, check_kafka_bootstrap
from tests.fixtures.cli import Run, run_ledger

FIXTURES = Path(__file__).parent.parent / "fixtures"
COMMANDS = [
    ["info"],
    ["ingest", "{jsonl}"],
    ["show", "balances"],
    ["show", "trial-balance", "--as-of", "2025-01-31"],
    ["audit", "verify"],
    ["deadletters", "list"],
    ["deadletters", "replay"],
    ["invoice", "run", "--period", "2025-01"],
    ["collections", "run", "--as-of", "2025-03-01"],
    ["collections", "preview", "--as-of", "2025-03-01"],
    ["reconcile", "{recon}"],
    ["remittance", "pay", "--period", "2025-01", "--amount", "1.00", "--reference", "R-1"],
    ["projections", "status"],
    ["projections", "rebuild"],
    ["policy", "show"],
    ["serve", "--port", "1"],
]


def bad_urls(tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (LEDGER_DATABASE_URL, what the one line must say)."""
    text = tmp / "notes.txt"
    text.write_text("these are not the tables you are looking for\n")
    return {
        "missing directory": (f"sqlite:///{tmp / 'no' / 'such' / 'ledger.db'}", "does not exist"),
        "unsupported scheme": ("mysql://ledger@db/ledger", "neither sqlite:///PATH nor"),
        "not sqlite": (f"sqlite:///{text}", "is not a SQLite database"),
        "a directory": (f"sqlite:///{tmp}", "is a directory"),
    }


def one_line_error(done: Run, says: str) -> None:
    assert done.code == 1, (done.out, done.err)
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "Traceback" not in done.err + done.out


def run(tmp: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        url: str, args: list[str]) -> Run:  # fmt: skip
    jsonl = tmp / "in.jsonl"
    jsonl.write_text('{"message_id":"m1"}\n')
    monkeypatch.chdir(tmp)
    filled = [a.format(jsonl=jsonl, recon=FIXTURES / "v1_recon.csv") for a in args]
    return run_ledger(filled, url, monkeypatch, capsys)


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("kind", ["missing directory", "unsupported scheme", "not sqlite",
                                  "a directory"])  # fmt: skip
def test_a_bad_database_url_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    kind: str, args: list[str],
) -> None:  # fmt: skip
    url, says = bad_urls(tmp_path)[kind]
    done = run(tmp_path, monkeypatch, capsys, url, args)
    one_line_error(done, says)
    assert "LEDGER_DATABASE_URL" in done.err


def test_an_unreachable_postgresql_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_LOG_LEVEL", "error")
    done = run(tmp_path, monkeypatch, capsys, "postgresql://nobody:secret@127.0.0.1:1/ledger",
               ["audit", "verify"])  # fmt: skip
    one_line_error(done, "database postgresql://nobody:***@127.0.0.1:1/ledger")
    assert "secret" not in done.err


@pytest.mark.parametrize(
    ("variable", "value", "args", "says"),
    [
        ("LEDGER_POLICY_FILE", "{missing}", ["show", "balances"], "not found"),
        ("LEDGER_POLICY_FILE", "{bad_toml}", ["collections", "run"], "not valid TOML"),
        ("LEDGER_API_TOKENS_FILE", "{bad_toml}", ["tokens", "list"], "not valid TOML"),
        ("LEDGER_API_TOKENS_FILE", "{bad_role}", ["serve", "--port", "1"], "role 'god'"),
        ("LEDGER_KAFKA_BOOTSTRAP", "localhost", ["consume"], "is not host:port"),
        ("LEDGER_KAFKA_BOOTSTRAP", "kafka:99999", ["publish"], "is not host:port"),
        ("LEDGER_KAFKA_BOOTSTRAP", "localhost", ["show", "balances"], "is not host:port"),
        ("LEDGER_MICROSOFT_PAYMENT_TERMS_DAYS", "sixty", ["show", "remittance"],
         "LEDGER_MICROSOFT_PAYMENT_TERMS_DAYS"),
    ],
)  # fmt: skip
def test_other_configuration_mistakes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    variable: str, value: str, args: list[str], says: str,
) -> None:  # fmt: skip
    bad_toml, bad_role = tmp_path / "bad.toml", tmp_path / "role.toml"
    bad_toml.write_text("policies = [valid toml\n")
    bad_role.write_text('[[tokens]]\nname = "x"\nrole = "god"\nsha256 = "' + "a" * 64 + '"\n')
    filled = value.format(missing=tmp_path / "none.toml", bad_toml=bad_toml, bad_role=bad_role)
    monkeypatch.setenv(variable, filled)
    done = run(tmp_path, monkeypatch, capsys, f"sqlite:///{tmp_path / 'ledger.db'}", args)
    one_line_error(done, says)


def test_the_checks_accept_what_the_ledger_uses(tmp_path: Path) -> None:
    for url in ("memory://", "sqlite:///:memory:", f"sqlite:///{tmp_path / 'new.db'}",
                "postgresql://u:p@h:5432/db", "postgres://h/db"):  # fmt: skip
        check_database_url(url)
    for bootstrap in (None, "localhost:9092", "k1:9092,k2:9093", "10.0.0.1:9092", "[::1]:9092"):
        check_kafka_bootstrap(bootstrap)
    with pytest.raises(ConfigError):
        check_kafka_bootstrap("localhost:0")


# ---- options at the edges: one line, exit 2 (usage) or 1, never a traceback -----------------


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["remittance", "pay", "--period", "2025-01", "--amount", "1e999999", "--reference", "R",
          "--currency", "USD"], 2, "is not a decimal number"),
        (["remittance", "pay", "--period", "2025-01", "--amount", "1234567890123456", "--reference",
          "R", "--currency", "USD"], 2, "has 16 digits before the decimal point, at most 15"),
        (["remittance", "pay", "--period", "2025-01", "--amount", "10", "--reference", "R",
          "--currency", "usdd"], 2, "not a currency code"),
        (["reconcile", "{recon}", "--period", "9999-12"], 2, "is out of range"),
        (["reconcile", "{recon}", "--invoice-date", "9999-12-31"], 2, "is out of range"),
        (["invoice", "run", "--period", "9999-12"], 2, "is out of range"),
        (["serve", "--host", "999.1.1.1", "--port", "8768"], 1, "cannot listen on 999.1.1.1"),
        (["demo", "--db", "{tmp}/no/such/demo.db"], 2, "does not exist"),
    ],
)  # fmt: skip
def test_options_at_the_edges_are_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], code: int, says: str,
) -> None:  # fmt: skip
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = run(tmp_path, monkeypatch, capsys, f"sqlite:///{tmp_path / 'ledger.db'}", filled)
    assert done.code == code, (done.out, done.err)
    assert says in done.err, done.err
    assert "Traceback" not in done.err + done.out
    if code == 1:
        assert len(done.err.strip().splitlines()) == 1, done.err


def test_checking_a_sqlite_url_keeps_the_locks_this_process_holds(tmp_path):
    """Closing any descriptor of a SQLite file drops every POSIX lock the process holds on it
    (SQLite's "How To Corrupt" §2.2): the URL check must never open() the file itself."""
    import sqlite3
    import subprocess
    import sys

    from ledger.config import check_database_url

    path = tmp_path / "ledger.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    writer.execute("INSERT INTO t VALUES (1)")
    check_database_url(f"sqlite:///{path}")
    other = subprocess.run(
        [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], "
         "timeout=0, isolation_level=None); c.execute('BEGIN IMMEDIATE')", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    writer.execute("COMMIT")
    writer.close()
    assert other.returncode != 0 and "locked" in other.stderr, other.stderr
