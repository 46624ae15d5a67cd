"""The identity of a reconciliation import is its invoice number and its lines' content (SPEC
§7), never its bytes: the same invoice downloaded again with its columns moved, new columns,
other line endings, quoting, date or number forms is the same import (exit 0, the report again,
nothing recorded); the same invoice number with other lines is refused, naming the first line
that differs. Stores written before content identity (only the file's sha256) keep working."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.app.application import LedgerApplication
from ledger.app.reconcile import import_recon_file, parse_recon_file
from ledger.domain.remittance import same_import
from ledger.store.eventstore import eventsourcing_env
from tests.fixtures.cli import Run, run_ledger
from tests.fixtures.recon_gen import Scenario, generate
from tests.helpers import msgs

RECORDED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent.parent / "fixtures"
Ledger = Callable[..., Run]


def rows_of(raw: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    return list(reader.fieldnames or ()), list(reader)


def us_to_iso(text: str) -> str:
    month, day, year = text.split("/")
    return f"{year}-{int(month):02d}-{int(day):02d}"


def downloaded_again(raw: bytes, seed: int = 1, *, upper_ids: bool = False) -> bytes:
    """The same invoice as Partner Center may serve it another day: Subtotal, TaxTotal, Total
    moved after Currency, two new columns, LF instead of CRLF, no BOM, every field quoted,
    ISO dates, "12.50" as "12.5", ChargeType spelled as in the UI, the lines in another order
    (and with `upper_ids` the GUIDs in upper case)."""
    header, rows = rows_of(raw)
    moved = ["Subtotal", "TaxTotal", "Total"]
    header = [c for c in header if c not in moved]
    at = header.index("Currency") + 1
    header[at:at] = moved
    header += ["ProductQualifiers2", "PromotionCode"]
    changed = []
    for row in rows:
        row = dict(row, ProductQualifiers2="Trial", PromotionCode="")
        for column in ("ChargeStartDate", "ChargeEndDate"):
            row[column] = us_to_iso(row[column])
        if row["Subtotal"].endswith("0") and "." in row["Subtotal"]:
            row["Subtotal"] = row["Subtotal"].rstrip("0").rstrip(".")
        row["ChargeType"] = {"cycleCharge": "Cycle charge", "addQuantity": "Add quantity"}.get(
            row["ChargeType"], row["ChargeType"]
        )
        if upper_ids:  # Microsoft writes tenant ids in both cases (SPEC §2)
            row["CustomerId"] = row["CustomerId"].upper()
        changed.append(row)
    random.Random(seed).shuffle(changed)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows(changed)
    return out.getvalue().encode("utf-8")


def with_rows(raw: bytes, change: Callable[[list[dict[str, str]]], None]) -> tuple[bytes, int]:
    """The file with its rows changed in place (same header); returns the bytes and the file
    line number of the first row whose dict `change` marked with "__changed__"."""
    header, rows = rows_of(raw)
    change(rows)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n",
                            extrasaction="ignore")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    marked = [n + 2 for n, row in enumerate(rows) if row.get("__changed__")]
    return out.getvalue().encode("utf-8"), (marked[0] if marked else 0)


@pytest.fixture
def scenario() -> Scenario:
    return generate(120, 5, seed=21)


@pytest.fixture
def store(tmp_path: Path, scenario: Scenario) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    assert app.handle_batch(msgs(scenario.messages)).count("applied") == len(scenario.messages)
    return url


@pytest.fixture
def ledger(
    store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Ledger:
    def run(*args: str) -> Run:
        return run_ledger(list(args), store, monkeypatch, capsys)

    return run


def head(url: str) -> int:
    return LedgerApplication(eventsourcing_env(url)).head_position()


def test_the_reformatted_download_has_the_same_content(scenario: Scenario) -> None:
    first = parse_recon_file(scenario.csv_bytes)
    again = parse_recon_file(downloaded_again(scenario.csv_bytes, upper_ids=True))
    assert first.sha256 != again.sha256
    assert first.content_sha256 == again.content_sha256


def test_the_same_invoice_downloaded_again_is_the_same_import(
    ledger: Ledger, scenario: Scenario, store: str, tmp_path: Path
) -> None:
    original, again = tmp_path / "recon.csv", tmp_path / "recon-again.csv"
    original.write_bytes(scenario.csv_bytes)
    again.write_bytes(downloaded_again(scenario.csv_bytes))
    first = ledger("reconcile", str(original), "--json")
    assert first.code == 0, first.err
    before = head(store)

    second = ledger("reconcile", str(again), "--json")

    assert second.code == 0, second.err
    assert "already imported; nothing recorded" in second.err
    assert head(store) == before
    report, report_again = json.loads(first.out), json.loads(second.out)
    # The same report; only the file line numbers of the missing lines follow the new order.
    for doc in (report, report_again):
        for line in doc["missing_in_ledger"]:
            line.pop("line")
            line.pop("charge_type")  # as the file spells it
        doc["missing_in_ledger"].sort(key=lambda line: json.dumps(line, sort_keys=True))
        doc["amount_mismatches"].sort(key=lambda m: m["charge_id"])
    assert report_again == report
    assert ledger("audit", "verify").code == 0


def test_a_line_whose_amount_differs_is_refused_and_named(
    ledger: Ledger, scenario: Scenario, store: str, tmp_path: Path
) -> None:
    original = tmp_path / "recon.csv"
    original.write_bytes(scenario.csv_bytes)
    assert ledger("reconcile", str(original)).code == 0
    before = head(store)

    def raise_one(rows: list[dict[str, str]]) -> None:
        rows[7]["Subtotal"] = str(Decimal(rows[7]["Subtotal"]) + Decimal("0.01"))
        rows[7]["__changed__"] = "y"

    changed, line = with_rows(scenario.csv_bytes, raise_one)
    (tmp_path / "changed.csv").write_bytes(changed)
    done = ledger("reconcile", str(tmp_path / "changed.csv"), "--json")

    assert done.code == 1
    assert done.out == ""  # no report
    assert done.err.count("\n") == 1, done.err
    assert "G012345678 was already imported with other lines" in done.err
    assert f"line {line} (" in done.err and "is not on the recorded import" in done.err
    assert head(store) == before


def test_a_file_lacking_a_line_is_refused(ledger: Ledger, scenario: Scenario,
                                          tmp_path: Path) -> None:  # fmt: skip
    original = tmp_path / "recon.csv"
    original.write_bytes(scenario.csv_bytes)
    assert ledger("reconcile", str(original)).code == 0
    shorter, _ = with_rows(scenario.csv_bytes, lambda rows: rows.__delitem__(3))
    (tmp_path / "shorter.csv").write_bytes(shorter)

    done = ledger("reconcile", str(tmp_path / "shorter.csv"))

    assert done.code == 1
    assert f"has {scenario.line_count - 1} lines and lacks 1 of the {scenario.line_count}" in (
        done.err
    )


def test_a_duplicated_line_is_other_content(scenario: Scenario) -> None:
    """Lines are a multiset: the same line twice is not the same invoice as once."""
    twice, _ = with_rows(scenario.csv_bytes, lambda rows: rows.append(dict(rows[0])))
    assert (
        parse_recon_file(twice).content_sha256
        != parse_recon_file(scenario.csv_bytes).content_sha256
    )


# ---- stores written before content identity --------------------------------------------------


def legacy_app(url: str) -> LedgerApplication:
    """A store holding the events written by the code before content identity (and before
    hash version 2): tests/fixtures/v1_store.jsonl, dumped from a SQLite ledger made by
    main at 4ab05a0 (customers, charges, payments, an invoice run, the import of
    v1_recon.csv, a payment to Microsoft)."""
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: RECORDED)
    rows = [json.loads(text) for text in (FIXTURES / "v1_store.jsonl").read_text().splitlines()]
    app.recorder.insert_events([
        StoredEvent(originator_id=UUID(r["originator_id"]),
                    originator_version=r["originator_version"], topic=r["topic"],
                    state=r["state"].encode("utf-8"))
        for r in rows
    ])  # fmt: skip
    return app


def test_a_legacy_import_is_recognised_by_its_exact_file_only(tmp_path: Path) -> None:
    app = legacy_app(f"sqlite:///{tmp_path / 'old.db'}")
    raw = (FIXTURES / "v1_recon.csv").read_bytes()
    known = app.recorded_microsoft_invoice("G012345678")
    assert known is not None and "content_sha256" not in known
    head_before = app.head_position()

    again = import_recon_file(app, raw, payment_terms_days=60)

    assert again.recorded is False
    assert app.head_position() == head_before
    # Its content was never recorded: a reformatted file cannot be proven the same (fail closed).
    from ledger.domain.errors import Conflict

    with pytest.raises(Conflict, match="before imports were identified by content"):
        import_recon_file(app, downloaded_again(raw), payment_terms_days=60)
    assert app.head_position() == head_before


def test_same_import_rule() -> None:
    legacy: dict[str, Any] = {"file_sha256": "a" * 64}
    assert same_import(legacy, {"file_sha256": "a" * 64, "content_sha256": "c" * 64})
    assert not same_import(legacy, {"file_sha256": "b" * 64, "content_sha256": "c" * 64})
    known = {"file_sha256": "a" * 64, "content_sha256": "c" * 64}
    assert same_import(known, {"file_sha256": "b" * 64, "content_sha256": "c" * 64})
    assert not same_import(known, {"file_sha256": "a" * 64, "content_sha256": "d" * 64})
