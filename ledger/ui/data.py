"""What the console's pages show, read through the API's own functions (`Reader.view`,
`Reader.account`, the invoices view's `invoice_row`, `balance_row`, `delinquency_row`, the
event history's reader), so that every figure on a page equals the same figure in the API
(SPEC §15). The pages over the whole book (overview, worklist, search, trial balance) filter,
order, page and sum in SQL over the summary tables (projections/summaries.py,
projections/summary_queries.py) and make only the shown rows with those functions. Embedded,
the views are folded in-process (and the summary tables made in memory from them); with
Kafka, the stored projection rows and summaries are read (as the API does)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from ledger.api.data import Reader
from ledger.api.history import _select
from ledger.app.audit import BrokenLink, _check_link
from ledger.app.views import VIEW_SOURCE, project_rows, render_view
from ledger.domain import events as ev
from ledger.domain.hashchain import GENESIS
from ledger.domain.ids import normalize_id
from ledger.domain.money import fmt, quantize
from ledger.published import to_published
from ledger.store.db import Database
from ledger.ui.web import PAGE_SIZE, page_of, paged_from
from projections import summaries as summary_tables
from projections import summary_queries as queries
from projections.accounts import balance_row, delinquency_row
from projections.base import Row, Rows, dec, fold
from projections.invoices import invoices_view
from projections.support import SupportProjection, support_view

ZERO = Decimal(0)
STORE_ERRORS = (sqlite3.OperationalError, psycopg.errors.UndefinedTable)
AGING_LABELS = {
    "current": "Current",
    "d1_30": "1-30 days",
    "d31_60": "31-60 days",
    "d61_90": "61-90 days",
    "d90_plus": "Over 90 days",
}


def source_rows(reader: Reader, projections: Iterable[str]) -> dict[str, Rows]:
    """The projection rows the API's views of today are rendered from: the stored rows with
    Kafka (one query each, one connection), else folded from the event store."""
    wanted = sorted(set(projections))
    if reader.stored:
        with reader.rows() as store:
            return {name: store.load_all(name) for name in wanted}
    return {name: project_rows(reader.app, name) for name in wanted}


def view(
    reader: Reader, rows: dict[str, Rows], name: str, day: date, **filters: Any
) -> list[dict[str, Any]]:
    """A SPEC §6 view from already loaded rows, by the API's `render_view`."""
    return render_view(reader.app, rows[VIEW_SOURCE[name]], name, day, **filters)


# ---- the summary tables (projections/summaries.py) -----------------------------------------


@dataclass
class Summaries:
    """The summary tables to query (projections.summary_queries) and the accounts rows of
    the customers a page shows."""

    db: Any
    load: Callable[[list[str]], Rows]

    def accounts(self, customer_ids: list[str]) -> list[Row]:
        """These customers' accounts rows, in this order."""
        found = self.load(customer_ids)
        return [found[c] for c in customer_ids if c in found]


class _MemoryDatabase(Database):
    """An in-memory SQLite database (embedded: the summaries of rows folded in-process)."""

    def __init__(self) -> None:  # no URL: nothing to connect to
        self.url = ""
        self.is_postgres = False
        self.conn = sqlite3.connect(":memory:")


@contextmanager
def summaries(reader: Reader, projections: Iterable[str] = ("accounts",)) -> Iterator[Summaries]:
    """With Kafka, the summary tables `ledger project` keeps next to the rows; embedded, the
    same tables made in memory by the same code from the rows folded from the event store
    (`projections`: which projections' summaries a page needs), so one SQL serves both."""
    if reader.stored:
        with reader.rows() as store:
            yield Summaries(store.db, lambda ids: store.load("accounts", ids))
        return
    rows = {name: project_rows(reader.app, name) for name in set(projections) | {"accounts"}}
    db = _MemoryDatabase()
    try:
        db.create_schema(*summary_tables.schema(False))
        for name, folded in rows.items():
            summary_tables.save(db, name, folded)
        accounts = rows["accounts"]
        yield Summaries(db, lambda ids: {c: accounts[c] for c in ids if c in accounts})
    finally:
        db.close()


# ---- overview -------------------------------------------------------------------------------


@dataclass
class Overview:
    day: date
    aging: dict[str, dict[str, str]]  # currency -> bucket -> amount
    months: list[dict[str, Any]]  # billing period, currency, invoiced, cash collected, overdue
    microsoft: list[dict[str, Any]]
    exposure: dict[str, str]  # currency -> sum of the remittance view's exposure
    counts: dict[str, int]


def overview(reader: Reader) -> Overview:
    """Receivables aging per currency (the sum of the `balances` rows' aging), invoiced,
    cash collected and overdue per billing period (sums of the API's invoice rows), counts
    for the lists (summed in SQL over the summary tables), the `microsoft` rows and
    exposure (sum of the `remittance` rows)."""
    day = reader.today()
    with summaries(reader, ("accounts", "support")) as found:
        figures = queries.receivables(found.db, day)
        tickets = queries.ticket_counts(found.db)
    rows = source_rows(reader, ("microsoft",))
    exposure: dict[str, Decimal] = {}
    for item in reader.view("remittance", day, False):
        exposure[item["currency"]] = exposure.get(item["currency"], ZERO) + dec(item["exposure"])
    return Overview(
        day=day,
        aging={
            cur: {b: fmt(v, cur) for b, v in sums.items()}
            for cur, sums in sorted(figures.aging.items())
        },
        months=[
            {
                "period": period,
                "currency": cur,
                "invoiced": fmt(invoiced, cur),
                "collected": fmt(collected, cur),
                "overdue": fmt(overdue, cur),
            }
            for period, cur, invoiced, collected, overdue in figures.months
        ],
        microsoft=view(reader, rows, "microsoft", day),
        exposure={cur: fmt(v, cur) for cur, v in sorted(exposure.items())},
        counts={
            **figures.counts,
            "open_tickets": tickets.get("open", 0),
            "escalated_tickets": tickets.get("escalated", 0),
        },
    )


# ---- lists ----------------------------------------------------------------------------------


def worklist(
    reader: Reader, sort: str, descending: bool, page: int, size: int = PAGE_SIZE
) -> dict[str, Any]:
    """One page of the collections worklist (the `GET /delinquency` rows) in the chosen order
    (`sort`: days, amount or name): ordered and paged in SQL, the page's rows made by the
    view's own `delinquency_row`."""
    day = reader.today()
    with summaries(reader) as found:
        number, total, ids = _page(
            lambda offset: queries.worklist(found.db, day, sort, descending, offset, size),
            page, size,
        )  # fmt: skip
        rows = found.accounts(ids)
    items = [delinquency_row(row, day, reader.app.policies) for row in rows]
    return paged_from(items, number, total, size)


def _page(
    query: Callable[[int], tuple[int, list[str]]], page: int, size: int
) -> tuple[int, int, list[str]]:
    """(page number shown, total, ids) of `query(offset)` -> (total, ids of the page): the
    page asked, or the last one when that is past the end (as `paged`)."""
    total, ids = query((page - 1) * size)
    if ids:
        return page, total, ids
    number, offset = page_of(total, page, size)
    return (number, *query(offset)) if total else (number, total, ids)


def search_customers(
    reader: Reader, query: str, page: int, size: int = PAGE_SIZE
) -> tuple[dict[str, Any], str | None]:
    """One page of the `balances` rows whose customer id or name contains `query`
    (case-insensitive), by customer id; and the customer id `query` names exactly, if it
    is one of them."""
    needle = query.strip().lower()
    day = reader.today()
    with summaries(reader) as found:
        number, total, ids = _page(
            lambda offset: queries.search(found.db, needle, offset, size), page, size
        )
        rows = found.accounts(ids)
        wanted = normalize_id(query.strip())
        exact = found.accounts([wanted]) if query.strip() else []
    named = [r["customer_id"] for r in exact if r.get("currency")]
    items = [balance_row(row, day) for row in rows]
    return paged_from(items, number, total, size), (named[0] if named else None)


def trial_balance(reader: Reader, page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of the trial balance (the `GET /trial-balance` rows, by account and
    currency) and, under `totals`, the debits and credits of all of it per currency."""
    with summaries(reader, ("journal",)) as found:
        total, totals = queries.trial_balance_totals(found.db)
        number, offset = page_of(total, page, size)
        items = queries.trial_balance_page(found.db, size, offset)
    listing = paged_from(items, number, total, size)
    listing["totals"] = {
        cur: [quantize(debit, cur), quantize(credit, cur)]
        for cur, (debit, credit) in totals.items()
    }
    return listing


# ---- one customer ---------------------------------------------------------------------------


@dataclass
class ChainStatus:
    """The customer's hash chain recomputed event by event (as `ledger audit verify`)."""

    checked: int
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass
class CustomerPage:
    account: Row
    balance: dict[str, Any]
    invoices: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    delinquency: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    chain: ChainStatus | None = None


def customer(reader: Reader, customer_id: str, *, with_history: bool) -> CustomerPage:
    """The customer's page; `with_history` (auditor and up): the event timeline and the
    chain's status.
    Raises UnknownCustomer."""
    day = reader.today()
    row = reader.account(customer_id)
    invoices = invoices_view({row["customer_id"]: row}, day)  # the API's rows, in its order
    delinquent = render_view(reader.app, {customer_id: row}, "delinquency", day)
    events, chain = history(reader, row["customer_id"], check=with_history)
    # The support projection folded over this customer's stream, which holds every event of
    # its tickets: the rows `GET /support/tickets?customer_id=` reads, without the others'.
    tickets = support_view(fold(SupportProjection(), events))
    subscriptions = sorted(
        {e["data"]["subscription_id"].lower() for e in events if e["event_type"] == "ChargePosted"}
        | set(row["suspended"])
    )
    page = CustomerPage(
        account=row,
        balance=balance_row(row, day),
        invoices=invoices,
        subscriptions=[
            {"subscription_id": s, "suspended_since": row["suspended"].get(s)}
            for s in subscriptions
        ],
        tickets=tickets,
        delinquency=delinquent[0] if delinquent else None,
    )
    if with_history:
        page.events = events
        page.chain = chain
    return page


def history(reader: Reader, customer_id: str, *, check: bool) -> tuple[list[Row], ChainStatus]:
    """The customer's events in the SPEC §5 shape with their hash-chain links, as
    `GET /customers/{id}/events` gives them, read once; with `check`, the chain recomputed
    event by event over them as `ledger audit verify` does. An event that cannot be decoded
    (an altered row) ends the list and is the broken link."""
    app = reader.app
    events: list[Row] = []
    version, prev_hash, rule, checked = 0, GENESIS, 1, 0
    broken: BrokenLink | None = None
    for notification in _select(app, app.stream_id(customer_id), 0, None):
        try:
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, ev.LedgerEvent)
        except Exception as error:  # any decoding failure means the row was altered
            reason = f"event cannot be decoded: {error}"
            broken = broken or BrokenLink(customer_id, notification.originator_version, reason)
            break
        events.append(
            {
                **to_published(event, notification.id),
                "prev_hash": event.prev_hash,
                "hash": event.hash,
            }
        )
        if check and broken is None:
            link = _check_link(event, version, prev_hash, customer_id, rule)
            if isinstance(link, BrokenLink):
                broken = link
            else:
                version, prev_hash, rule = event.originator_version, event.hash, link
                checked += 1
    return events, ChainStatus(checked, broken)


# ---- Microsoft ------------------------------------------------------------------------------


def reconciliations(reader: Reader, remittance: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reconciliation reports (SPEC §7) recorded in the remittance streams of the
    periods shown: one keyed stream read per period and currency."""
    from ledger.domain.remittance import remittance_id

    app = reader.app
    recorder: Any = app.recorder
    found: list[dict[str, Any]] = []
    for row in remittance:
        stream = remittance_id(row["billing_period"], row["currency"])
        for item in recorder.select_events(stream):
            if item.topic.endswith(":ReconciliationRecorded"):
                event = app.mapper.to_domain_event(item)
                found.append(dict(getattr(event, "data", {})))
    return found


# ---- audit ----------------------------------------------------------------------------------


def checkpoints(reader: Reader, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` audit checkpoints kept in the database (SPEC §13): the
    `audit_checkpoints` table of ledger/store/checkpoints.py, none before the first is taken.
    Read over the API's connection (pooled with PostgreSQL), never creating the table."""
    import json

    sql = "SELECT line FROM audit_checkpoints ORDER BY taken_at DESC, checkpoint_id DESC LIMIT %s"
    with reader.rows() as store:
        try:
            lines = [line for (line,) in store.db.execute(sql, (limit,)).fetchall()]
        except STORE_ERRORS as error:
            if "audit_checkpoints" not in str(error):
                raise
            store.db.rollback()
            lines = []  # no checkpoint was ever taken: the table is made by the first one
    return [json.loads(line) for line in lines]
