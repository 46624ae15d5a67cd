"""`ledger bill partner-center` end to end, as a user runs it (SPEC §10): on SQLite and on the
real PostgreSQL, bill a generated Partner Center file, run the invoices, reconcile the same file
(every billed line matches, no mismatch), bill it again (nothing new); a file with an unknown
customer, an unknown ChargeType and a currency without a rate reports each; and with Kafka the
charges go to `billing.charges`, `ledger consume` ingests them and `ledger project` fills the
margin view, which equals the embedded one and a rebuild."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.store.db import Database
from projections.margin import margin_view
from projections.store import RowStore
from tests.e2e.procs import (
    LEDGER_BIN,
    Processes,
    ledger_env,
    make_ingest_topics,
    read_topic,
    run_ledger,
    wait_until,
)
from tests.fixtures.recon_gen import Scenario, generate

pytestmark = pytest.mark.e2e

PERIOD = "2025-01"
BOOK = """
[defaults]
markup_percent = "15"

[[rules]]                       # a customer-specific fixed price, protected for the year
customer_id = "{special}"
product_id = "CFQ7TTC0LH18"
valid_from = "2025-01-01"
valid_to = "2025-12-31"
unit_price = "7.00"

[[rules]]                       # Azure usage at a thinner markup, flagged below 12 %
charge_types = ["usage"]
markup_percent = "10"
min_margin_percent = "12"

[fx]
"USD->EUR" = "0.92"
"""


class Ledger:
    """The `ledger` command on one database (and Kafka when given), in a work directory."""

    def __init__(self, work: Path, database_url: str, **env: str) -> None:
        self.work = work
        self.url = database_url
        self.env = ledger_env(database_url)
        self.env.update(env)

    def run(self, *args: str, ok: bool = True) -> Any:
        if ok:
            return run_ledger(*args, env=self.env, cwd=self.work, timeout=300)
        import subprocess

        return subprocess.run([LEDGER_BIN, *args], env=self.env, cwd=self.work,
                              capture_output=True, timeout=300)  # fmt: skip

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)


def scenario_files(work: Path, lines: int = 600, seed: int = 41) -> tuple[Scenario, str]:
    """The generated file, its customers' registrations (one of them billed in EUR) and a
    price book; returns the scenario and the EUR customer."""
    scenario = generate(lines, 8, seed=seed, period=PERIOD)
    registrations = [json.loads(m) for m in scenario.messages
                     if json.loads(m)["type"] == "customer_registered"
                     and json.loads(m)["customer_id"] in scenario.customers]  # fmt: skip
    euro = scenario.customers[1]
    for message in registrations:
        if message["customer_id"] == euro:
            message["currency"] = "EUR"
    (work / "customers.jsonl").write_text("".join(json.dumps(m) + "\n" for m in registrations))
    (work / "invoice.csv").write_bytes(scenario.csv_bytes)
    (work / "prices.toml").write_text(BOOK.format(special=scenario.customers[2]))
    return scenario, euro


def trial_balance_is_zero(ledger: Ledger) -> None:
    rows = ledger.json("show", "trial-balance", "--json")
    for currency in {r["currency"] for r in rows}:
        assert sum(Decimal(r["balance"]) for r in rows if r["currency"] == currency) == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    fresh: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
    return fresh()


def test_bill_invoice_reconcile_and_bill_again(tmp_path: Path, database_url: str) -> None:
    scenario, euro = scenario_files(tmp_path)
    ledger = Ledger(tmp_path, database_url)
    ledger.run("ingest", "customers.jsonl")

    dry = ledger.json("bill", "partner-center", "invoice.csv", "--price-book", "prices.toml",
                      "--dry-run", "--json")  # fmt: skip
    assert ledger.json("show", "margin", "--json") == []  # a dry run posts nothing
    report = ledger.json("bill", "partner-center", "invoice.csv", "--price-book", "prices.toml",
                         "--json")  # fmt: skip
    assert dry == report
    lines = scenario.line_count
    unknown = [n for n in report["not_billed"] if "unknown_customer" in n["reason"]]
    assert len(unknown) == 1 and report["billed"] == lines - 1 and report["duplicates"] == 0
    assert report["not_billed"] == unknown  # nothing else left out
    assert (report["invoice_number"], report["billing_period"]) == (scenario.invoice_number,
                                                                    PERIOD)  # fmt: skip
    by_customer = {c["customer_id"]: c for c in report["customers"]}
    assert by_customer[euro]["currency"] == "EUR"
    assert sum(c["lines"] for c in report["customers"]) == lines - 1
    assert any(c["below_min_margin"] for c in report["customers"])  # usage at 10 % < 12 %

    # Invoices, then Microsoft's file again: every billed line matches, nothing differs.
    ledger.run("invoice", "run", "--period", PERIOD)
    recon = ledger.json("reconcile", "invoice.csv", "--json")
    assert recon["matched"] == report["billed"]
    assert [m["line"] for m in recon["missing_in_ledger"]] == [unknown[0]["line"]]
    assert recon["missing_on_invoice"] == [] and recon["amount_mismatches"] == []

    # Billing the same file again posts nothing: every line is a duplicate.
    again = ledger.json("bill", "partner-center", "invoice.csv", "--price-book", "prices.toml",
                        "--json")  # fmt: skip
    assert (again["billed"], again["duplicates"]) == (0, lines - 1)
    assert again["customers"] == report["customers"]
    # The unknown customer's line was refused the first time: the same outcome, not decided
    # again (issue #14.1), and reported, never dropped.
    assert [(n["line"], "refused before (unknown_customer)" in n["reason"])
            for n in again["not_billed"]] == [(unknown[0]["line"], True)]  # fmt: skip

    # The unknown customer is a replayable dead letter (one: the refusal is decided once);
    # the books balance per currency.
    letters = ledger.json("deadletters", "list", "--json")
    assert [d["code"] for d in letters] == ["unknown_customer"]
    trial_balance_is_zero(ledger)
    margin = ledger.json("show", "margin", "--json")
    assert {(r["customer_id"], r["currency"]) for r in margin} == {
        (c["customer_id"], c["currency"]) for c in report["customers"]
    }
    for row in margin:
        billed = by_customer[row["customer_id"]]
        assert (row["revenue"], row["cost"], row["margin"], row["margin_percent"]) == (
            billed["amount"],
            billed["cost"],
            billed["margin"],
            billed["margin_percent"],
        )
    table = ledger.run("bill", "partner-center", "invoice.csv", "--price-book",
                       "prices.toml").stdout.decode()  # fmt: skip
    assert "Billing by customer" in table and f"duplicates {lines - 1}" in table

    if database_url.startswith("postgresql"):
        # The stored margin rows a rebuild writes render the same view.
        ledger.run("projections", "rebuild", "margin")
        db = Database(database_url)
        try:
            rows = RowStore(db).load_all("margin")
            db.commit()
        finally:
            db.close()
        assert margin_view(rows) == margin


def edit_rows(raw: bytes, change: Callable[[list[dict[str, str]]], None]) -> bytes:
    text = raw.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    change(rows)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_what_cannot_be_billed_is_reported_and_nothing_else_is_affected(
    tmp_path: Path, database_url: str
) -> None:
    scenario, _ = scenario_files(tmp_path, lines=60, seed=43)
    ledger = Ledger(tmp_path, database_url)
    gbp = json.dumps({"message_id": "reg-gbp", "type": "customer_registered",
                      "customer_id": "pound-ltd", "occurred_at": "2024-12-01T09:00:00Z",
                      "name": "Pound Ltd", "currency": "GBP"})  # fmt: skip
    (tmp_path / "gbp.jsonl").write_text(gbp + "\n")
    ledger.run("ingest", "customers.jsonl")
    ledger.run("ingest", "gbp.jsonl")

    def spoil(rows: list[dict[str, str]]) -> None:
        rows[3]["ChargeType"] = "mysteryCharge"
        rows[5]["CustomerId"] = "pound-ltd"  # billed in GBP: the book has no USD->GBP rate

    (tmp_path / "spoiled.csv").write_bytes(edit_rows(scenario.csv_bytes, spoil))
    report = ledger.json("bill", "partner-center", "spoiled.csv", "--price-book", "prices.toml",
                         "--json")  # fmt: skip
    reasons = {n["line"]: n["reason"] for n in report["not_billed"]}
    assert "unknown ChargeType 'mysteryCharge'" in reasons[5]
    assert 'no [fx] rate "USD->GBP"' in reasons[7]
    [stranger] = [line for line, reason in reasons.items() if "unknown_customer" in reason]
    assert len(reasons) == 3
    assert report["billed"] == scenario.line_count - 3  # every other line, none dropped
    assert report["billed"] + len(report["not_billed"]) == report["lines"]
    charged = {r["customer_id"] for r in ledger.json("show", "margin", "--json")}
    assert "pound-ltd" not in charged
    assert stranger not in (5, 7)

    # A malformed price book: one clear error naming the rule and the key; nothing posted.
    (tmp_path / "bad.toml").write_text(
        '[[rules]]\nmarkup_percent = "10"\n[[rules]]\ncustomer_id = "x"\nmarkup_pct = "3"\n'
    )
    before = ledger.json("show", "margin", "--json")
    failed = ledger.run("bill", "partner-center", "invoice.csv", "--price-book", "bad.toml",
                        ok=False)  # fmt: skip
    assert failed.returncode == 1
    error = failed.stderr.decode().strip().splitlines()[-1]
    assert error == "error: bad.toml: rules[1].markup_pct: unknown key", error
    assert ledger.json("show", "margin", "--json") == before
    missing = ledger.run("bill", "partner-center", "invoice.csv", ok=False)
    assert missing.returncode == 1 and b"no price book" in missing.stderr


def test_with_kafka_billing_publishes_and_the_margin_view_fills_through_project(
    tmp_path: Path,
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
) -> None:
    scenario, _ = scenario_files(tmp_path, lines=300, seed=47)
    topics = make_ingest_topics(kafka_topics)
    env = ledger_env(fresh_pg_url(), bootstrap=kafka_bootstrap, topics=topics)
    env["LEDGER_CONSUMER_GROUP_PROJECT"] = f"{topics.events}.project-group"
    ledger = Ledger(tmp_path, env["LEDGER_DATABASE_URL"], **env)
    procs = Processes(tmp_path / "logs", env)
    try:
        # The event store's tables first: processes starting together on an empty database
        # race to create them.
        ledger.run("audit", "verify")
        for command in ("consume", "publish", "project"):
            procs.start(command, name=command)
        # Customers through Kafka too, like any upstream.
        customers = (tmp_path / "customers.jsonl").read_text().splitlines()
        reference = Ledger(tmp_path, f"sqlite:///{tmp_path / 'reference.db'}")
        reference.run("ingest", "customers.jsonl")
        from tests.e2e.procs import make_producer, produce

        producer = make_producer(kafka_bootstrap)
        produce(producer, ((topics.customers, json.loads(m)["customer_id"], m.encode())
                           for m in customers))  # fmt: skip
        producer.close(timeout=10)

        def registered() -> bool:
            rows = ledger.json("show", "balances", "--json")
            return len(rows) == len(customers)

        wait_until(registered, timeout=120, what="the customers to be registered",
                   procs=procs)  # fmt: skip
        report = ledger.json("bill", "partner-center", "invoice.csv", "--price-book",
                             "prices.toml", "--json")  # fmt: skip
        lines = scenario.line_count
        assert report["billed"] == lines - 1  # published; the stranger's goes too, and is...
        unknown = [n for n in report["not_billed"] if "unknown_customer" in n["reason"]]
        assert len(unknown) == 1
        on_topic = read_topic(kafka_bootstrap, topics.charges)
        assert len(on_topic) == lines  # ...a dead letter of `ledger consume`
        assert {json.loads(d.value)["type"] for d in on_topic} == {"charge"}

        expected = reference.json("bill", "partner-center", "invoice.csv", "--price-book",
                                  "prices.toml", "--json")  # fmt: skip
        assert expected["customers"] == report["customers"]
        want = reference.json("show", "margin", "--json")

        def filled() -> bool:
            return ledger.json("show", "margin", "--json") == want

        wait_until(filled, timeout=180, what="the margin view to fill through ledger project",
                   procs=procs)  # fmt: skip
        # Billing again publishes nothing (every charge id has its decision in the store):
        # the stranger's line was refused, and is reported so, as ingest would.
        again = ledger.json("bill", "partner-center", "invoice.csv", "--price-book",
                            "prices.toml", "--json")  # fmt: skip
        assert (again["billed"], again["duplicates"]) == (0, lines - 1)
        assert [n["line"] for n in again["not_billed"]] == [unknown[0]["line"]]
        assert again["not_billed"][0]["reason"].startswith("refused before (unknown_customer)")
        assert len(read_topic(kafka_bootstrap, topics.charges)) == lines

        # A rebuild gives the margin rows ledger project wrote.
        db = Database(env["LEDGER_DATABASE_URL"])
        live = RowStore(db).load_all("margin")
        db.commit()
        ledger.run("projections", "rebuild", "margin")
        rebuilt = RowStore(db).load_all("margin")
        db.commit()
        db.close()
        assert rebuilt == live and margin_view(rebuilt) == want
    finally:
        procs.kill_all()
