"""What the console's pages show, read through the API's own functions (`Reader.view`,
`Reader.account`, the invoices view's `invoice_row`, the event history's reader), so that every
figure on a page equals the same figure in the API (SPEC §15). Embedded, the views are folded
in-process; with Kafka, the stored projection rows are read (as the API does)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
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
from ledger.domain.money import fmt
from ledger.published import to_published
from projections.accounts import AGING_BUCKETS, balance_row
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
    """Receivables aging per currency (sum of the `balances` rows), invoiced, cash collected
    and overdue per billing period (sums of the API's invoice rows), the `microsoft` rows,
    exposure (sum of the `remittance` rows) and counts for the lists."""
    day = reader.today()
    rows = source_rows(reader, ("accounts", "microsoft", "remittance", "support"))
    balances = view(reader, rows, "balances", day)
    aging: dict[str, dict[str, Decimal]] = {}
    for row in balances:
        sums = aging.setdefault(row["currency"], dict.fromkeys(AGING_BUCKETS, ZERO))
        for bucket in AGING_BUCKETS:
            sums[bucket] += dec(row["aging"][bucket])
    delinquent = view(reader, rows, "delinquency", day)
    tickets = view(reader, rows, "support", day)
    exposure: dict[str, Decimal] = {}
    for item in view(reader, rows, "remittance", day):
        exposure[item["currency"]] = exposure.get(item["currency"], ZERO) + dec(item["exposure"])
    return Overview(
        day=day,
        aging={
            cur: {b: fmt(v, cur) for b, v in sums.items()} for cur, sums in sorted(aging.items())
        },
        months=_months(rows["accounts"], day),
        microsoft=view(reader, rows, "microsoft", day),
        exposure={cur: fmt(v, cur) for cur, v in sorted(exposure.items())},
        counts={
            "customers": len(balances),
            "delinquent": len(delinquent),
            "suspended": sum(1 for r in balances if r["status"] == "suspended"),
            "open_tickets": sum(1 for t in tickets if t["status"] == "open"),
            "escalated_tickets": sum(1 for t in tickets if t["status"] == "escalated"),
        },
    )


def _months(accounts: Rows, day: date) -> list[dict[str, Any]]:
    """Per billing period and currency: invoiced (void invoices left out), cash collected on
    those invoices (`paid`: payments, not credits nor write-offs) and what of them is open
    and overdue on `day`: sums of the `GET /customers/{id}/invoices` rows (SPEC §12)."""
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for item in invoices_view(accounts, day):
        if item["kind"] != "invoice" or not item["billing_period"] or item["status"] == "void":
            continue
        currency = item["currency"]
        slot = sums.setdefault((item["billing_period"], currency), [ZERO, ZERO, ZERO])
        slot[0] += dec(item["total"])
        slot[1] += dec(item["paid"])
        if item["days_past_due"] > 0:
            slot[2] += dec(item["open"])
    return [
        {
            "period": period,
            "currency": cur,
            "invoiced": fmt(s[0], cur),
            "collected": fmt(s[1], cur),
            "overdue": fmt(s[2], cur),
        }
        for (period, cur), s in sorted(sums.items())
    ]


# ---- lists ----------------------------------------------------------------------------------


def search_customers(reader: Reader, query: str) -> list[dict[str, Any]]:
    """`balances` rows whose customer id or name contains `query` (case-insensitive)."""
    needle = query.strip().lower()
    rows = source_rows(reader, ("accounts",))
    found = view(reader, rows, "balances", reader.today())
    return [
        r
        for r in found
        if needle in r["customer_id"].lower() or needle in (r["name"] or "").lower()
    ]


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
