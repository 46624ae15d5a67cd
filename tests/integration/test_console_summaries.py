"""The summary tables (projections/summaries.py) and their SQL (projections/summary_queries.py)
give what the Python views give for the same rows, on PostgreSQL and SQLite, stored (as
`ledger project` keeps them) and embedded (made in memory per request): the collections
worklist in every order and page, the search, the aging and monthly sums, the counts, the
trial balance and `GET /delinquency`'s keyset pages. A store made before the tables gets
them filled when it is opened."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.api.data import Reader
from ledger.api.pagination import paginate
from ledger.app.application import LedgerApplication
from ledger.app.views import project_rows
from ledger.config import Settings
from ledger.domain.money import fmt
from ledger.store.db import Database
from ledger.store.eventstore import eventsourcing_env
from ledger.store.readmodels import rebuild
from ledger.ui import data
from projections import summaries
from projections.accounts import AGING_BUCKETS
from projections.base import dec
from projections.invoices import invoices_view
from projections.store import RowStore
from projections.support import support_view
from tests.helpers import (
    charge,
    credit_note,
    customer_registered,
    msgs,
    payment,
    support_escalated,
    support_ticket_opened,
)

pytestmark = pytest.mark.integration

# Invoices dated 2025-02-01 and 2025-03-01, due after TERMS days: on NOW some are exactly 30
# and 60 days past due (the aging buckets' edges).
NOW = datetime(2025, 4, 19, 12, 0, tzinfo=UTC)
TERMS = (5, 12, 19, 17, 26, 40)
NAMES = ["Zeta GmbH", "alpha & Co", "Émile SARL", "50% Off_Ltd", "beta"]


def _feed(app: LedgerApplication) -> None:
    raws: list[str] = []
    for i in range(23):
        cid = f"cust-{i:02d}"
        currency = ("EUR", "USD", "JPY")[i % 3]
        amount = "1200" if currency == "JPY" else f"{100 + i}.{i % 10}5"
        cost = "900" if currency == "JPY" else "70.00"
        raws += [
            customer_registered(cid, name=NAMES[i % len(NAMES)] + f" {i}", currency=currency,
                                payment_terms_days=TERMS[i % 6]),
            charge(cid, "CH-1", amount, currency=currency, cost=cost,
                   occurred_at="2025-01-10T10:00:00Z"),
            charge(cid, "CH-2", amount, currency=currency, cost=cost, billing_period="2025-02",
                   occurred_at="2025-02-10T10:00:00Z"),
        ]  # fmt: skip
        if i % 4 == 0:
            raws += [
                support_ticket_opened(cid, "T-1", occurred_at="2025-02-03T10:00:00Z"),
                support_escalated(cid, "T-1", occurred_at="2025-02-04T10:00:00Z"),
            ]
    app.handle_batch(msgs(raws))
    app.run_invoices("2025-01", date(2025, 2, 1))
    paid = [
        payment(f"cust-{i:02d}", "PAY-1", "1200" if i % 3 == 2 else "60.00",
                currency=("EUR", "USD", "JPY")[i % 3], occurred_at="2025-02-15T10:00:00Z")
        for i in range(0, 23, 2)
    ]  # fmt: skip
    paid.append(credit_note("cust-03", "CN-1", amount="10.00", currency="EUR"))
    app.handle_batch(msgs(paid))
    app.run_invoices("2025-02", date(2025, 3, 1))
    app.run_collections(NOW.date())  # reminders and suspensions


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        yield request.getfixturevalue("fresh_pg_url")()
    else:
        yield f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def readers(store_url: str) -> Iterator[dict[str, Reader]]:
    """A reader of the stored rows (Kafka configured: rebuilt as `ledger project` keeps
    them) and an embedded one (folded in-process) over the same store."""
    app = LedgerApplication(eventsourcing_env(store_url), clock=lambda: NOW)
    _feed(app)
    db = Database(store_url)
    rebuild(app, db)
    db.close()
    stored = Reader(Settings(database_url=store_url, kafka_bootstrap="127.0.0.1:9"), app)
    embedded = Reader(Settings(database_url=store_url), app)
    try:
        yield {"stored": stored, "embedded": embedded}
    finally:
        stored.close()
        app.close()


def _all_pages(get: Callable[[int], dict[str, Any]]) -> list[Any]:
    first = get(1)
    items = list(first["items"])
    for number in range(2, first["pages"] + 1):
        items += get(number)["items"]
    return items


ORDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "days": lambda r: (r["days_past_due"], r["customer_id"]),
    "amount": lambda r: (Decimal(r["overdue"]), r["customer_id"]),
    "name": lambda r: ((r["name"] or "").lower(), r["customer_id"]),
}


def test_the_worklist_in_every_order_and_page_is_the_delinquency_view(
    readers: dict[str, Reader],
) -> None:
    for reader in readers.values():
        view = reader.view("delinquency", NOW.date(), False)
        assert any(r["suspended_since"] for r in view) and len(view) > 7
        for sort, key in ORDERS.items():
            for descending in (True, False):
                expected = sorted(view, key=key, reverse=descending)
                got = _all_pages(
                    lambda n, s=sort, d=descending, r=reader: data.worklist(r, s, d, n, size=4)
                )
                assert got == expected, (sort, descending)
        assert data.worklist(reader, "days", True, 99, size=4)["page"] == -(-len(view) // 4)


def test_the_search_finds_ids_and_names_as_the_balances_view(readers: dict[str, Reader]) -> None:
    for reader in readers.values():
        balances = reader.view("balances", NOW.date(), False)
        for query in ("", "CUST-1", "émile", "50%", "off_", "_", "& co", "nobody"):
            needle = query.strip().lower()
            expected = [
                r for r in balances
                if needle in r["customer_id"].lower() or needle in (r["name"] or "").lower()
            ]  # fmt: skip
            got = _all_pages(lambda n, q=query, r=reader: data.search_customers(r, q, n, size=5)[0])
            assert got == expected, query
        assert data.search_customers(reader, "cust-07", 1)[1] == "cust-07"
        assert data.search_customers(reader, "cust-0", 1)[1] is None
        assert data.search_customers(reader, "cust-0", 9, size=5)[0]["page"] == 2  # the last
        assert data.search_customers(reader, "nobody", 3)[0] == {
            "items": [],
            "page": 1,
            "pages": 1,
            "total": 0,
        }


def test_the_overview_sums_are_those_of_the_views(readers: dict[str, Reader]) -> None:
    for reader in readers.values():
        day = NOW.date()
        balances = reader.view("balances", day, False)
        aging: dict[str, dict[str, Decimal]] = {}
        for row in balances:
            sums = aging.setdefault(row["currency"], dict.fromkeys(AGING_BUCKETS, Decimal(0)))
            for bucket in AGING_BUCKETS:
                sums[bucket] += dec(row["aging"][bucket])
        months: dict[tuple[str, str], list[Decimal]] = {}
        for item in invoices_view(data.source_rows(reader, ("accounts",))["accounts"], day):
            if item["kind"] != "invoice" or not item["billing_period"] or item["status"] == "void":
                continue
            slot = months.setdefault((item["billing_period"], item["currency"]), [Decimal(0)] * 3)
            slot[0] += dec(item["total"])
            slot[1] += dec(item["paid"])
            slot[2] += dec(item["open"]) if item["days_past_due"] > 0 else 0
        tickets = support_view(data.source_rows(reader, ("support",))["support"])
        view = data.overview(reader)
        assert view.aging == {
            c: {b: fmt(v, c) for b, v in s.items()} for c, s in sorted(aging.items())
        }
        assert view.months == [
            {"period": p, "currency": c, "invoiced": fmt(s[0], c), "collected": fmt(s[1], c),
             "overdue": fmt(s[2], c)}
            for (p, c), s in sorted(months.items())
        ]  # fmt: skip
        assert view.counts == {
            "customers": len(balances),
            "delinquent": len(reader.view("delinquency", day, False)),
            "suspended": sum(1 for r in balances if r["status"] == "suspended"),
            "open_tickets": sum(1 for t in tickets if t["status"] == "open"),
            "escalated_tickets": sum(1 for t in tickets if t["status"] == "escalated"),
        }
        assert view.counts["suspended"] > 0 and view.counts["escalated_tickets"] > 0


def test_the_trial_balance_pages_and_totals_are_the_views(readers: dict[str, Reader]) -> None:
    for reader in readers.values():
        trial = sorted(
            reader.view("trial-balance", NOW.date(), False),
            key=lambda r: (r["account"], r["currency"]),
        )
        got = _all_pages(lambda n, r=reader: data.trial_balance(r, n, size=7))
        assert got == trial
        totals: dict[str, list[Decimal]] = {}
        for row in trial:
            sums = totals.setdefault(row["currency"], [Decimal(0), Decimal(0)])
            sums[0] += Decimal(row["debit"])
            sums[1] += Decimal(row["credit"])
        shown = data.trial_balance(reader, 1)["totals"]
        assert {c: [str(d), str(k)] for c, (d, k) in shown.items()} == {
            c: [str(d), str(k)] for c, (d, k) in totals.items()
        }


def test_the_api_worklist_pages_by_keyset_as_the_view(readers: dict[str, Reader]) -> None:
    reader = readers["stored"]
    day = NOW.date()
    view = reader.view("delinquency", day, False)
    after: tuple[int, str] | None = None
    got: list[dict[str, Any]] = []
    while True:
        page = reader.delinquency_after(day, after, 3)
        got += page
        if len(page) < 3:
            break
        after = (-page[-1]["days_past_due"], page[-1]["customer_id"])
    assert got == paginate(view, lambda r: (-r["days_past_due"], r["customer_id"]),
                           (int, str), "d", 1000, None).items  # fmt: skip


def test_a_store_made_before_the_summaries_gets_them_when_opened(
    readers: dict[str, Reader], store_url: str
) -> None:
    before = _summary_rows(store_url)
    assert before["customer_summaries"] and before["journal_summaries"]
    db = Database(store_url)
    for table in (*before, "summary_versions"):
        db.execute(f"DROP TABLE {table}")
    db.commit()
    db.close()
    reader = Reader(Settings(database_url=store_url, kafka_bootstrap="127.0.0.1:9"),
                    readers["stored"].app)  # fmt: skip
    reader.close()
    assert _summary_rows(store_url) == before


def _summary_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    db = Database(url)
    try:
        return summaries.dump(db)
    finally:
        db.close()


def test_the_remittance_rows_from_the_summaries_are_those_of_every_row(
    readers: dict[str, Reader],
) -> None:
    day = NOW.date()
    stored = readers["stored"].view("remittance", day, False)
    assert stored == readers["embedded"].view("remittance", day, False)
    assert {r["currency"] for r in stored} >= {"EUR", "USD", "JPY"}
    assert any(Decimal(r["collected_from_customers"]) > 0 for r in stored)
    january = readers["stored"].view("remittance", day, False, period="2025-01")
    assert january == [r for r in stored if r["billing_period"] == "2025-01"] != []


def test_saving_rows_again_leaves_the_summaries_of_the_rows_saved_last(store_url: str) -> None:
    """Summaries are written as a difference with what is stored: rows changed, grown and
    shrunk leave exactly the summaries of the rows as last saved."""
    app = LedgerApplication(eventsourcing_env(store_url), clock=lambda: NOW)
    try:
        _feed(app)
        folded = {name: project_rows(app, name) for name in summaries.SUMMARISED}
    finally:
        app.close()
    db = Database(store_url)
    try:
        store = RowStore(db)
        for name, rows in folded.items():
            store.save(name, rows)
        db.commit()
        assert summaries.dump(db) == summaries.dump_of(folded)
        changed = copy.deepcopy(folded)
        accounts = changed["accounts"]
        first, second = accounts["cust-01"], accounts["cust-02"]
        invoice = next(iter(first["invoices"].values()))
        invoice["remainder"], invoice["paid"] = "0", invoice["total"]  # paid in full
        first["name"], first["suspended"] = "Renamed", {"sub-1": "2025-04-01"}
        second["invoices"] = dict(list(second["invoices"].items())[:1])  # one invoice less
        second["invoices"]["INV-NEW"] = {"due_date": "2025-04-30", "total": "5.00",
                                          "remainder": "5.00", "period": "2025-04"}  # fmt: skip
        shares = [k for k in changed["remittance"] if k.startswith("invoice|")]
        changed["remittance"][shares[0]]["paid"] = "0"  # collected nothing more
        del changed["journal"][next(iter(changed["journal"]))]
        for name, rows in changed.items():
            store.save(name, rows)
        db.commit()
        assert summaries.dump(db) == summaries.dump_of(
            {**changed, "journal": {**folded["journal"], **changed["journal"]}}
        )
    finally:
        db.close()


def test_the_api_trial_balance_pages_by_keyset_as_the_view(readers: dict[str, Reader]) -> None:
    reader = readers["stored"]
    view = reader.view("trial-balance", NOW.date(), False)
    got: list[dict[str, Any]] = []
    after: tuple[str, str] | None = None
    while True:
        page = reader.trial_balance_after(after, 4)
        got += page
        if len(page) < 4:
            break
        after = (page[-1]["account"], page[-1]["currency"])
    assert len(got) > 8
    assert got == sorted(view, key=lambda r: (r["account"], r["currency"]))
