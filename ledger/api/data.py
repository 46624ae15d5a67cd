"""Where the API's answers come from.

With Kafka configured (production), `ledger project` keeps the projection rows in the
database and the API reads them: one keyed row for a customer, through a connection pool.
Embedded, and for past `as_of` dates, the same projection code folds the event store
in-process (for one customer, only that customer's stream). Event histories always come from
the event store, the source of truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from ledger.api.history import stream_events
from ledger.app.application import LedgerApplication
from ledger.app.views import VIEW_SOURCE, compute_view, render_view
from ledger.config import Settings
from ledger.domain.account import end_of, utc_day
from ledger.domain.errors import UnknownCustomer
from ledger.store.db import Database
from projections import summary_queries
from projections.accounts import AccountsProjection, delinquency_row
from projections.base import Row, fold, occurred_by
from projections.store import RowStore, parse_doc
from projections.timelines import recorded_by, settle_open_items

ACCOUNTS = AccountsProjection()


class _PooledDatabase(Database):
    """A `Database` over a connection lent by the pool (autocommit: reads only)."""

    def __init__(self, conn: Any) -> None:  # the pool connected it: no super().__init__
        self.url = ""
        self.is_postgres = True
        self.conn = conn


def _closed_by_server(conn: Any) -> bool:
    """A connection the server closed while it sat in the pool (restart, idle timeout) has
    its socket readable (EOF or a final error message); an idle healthy one has not."""
    import select

    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return bool(readable)


def _check_if_closed(conn: Any) -> None:
    """The pool's check before lending a connection, without a round trip per request (it
    was a second query for every balance lookup): only a connection that looks closed by the
    server is checked for real, and the pool replaces it if it fails."""
    from psycopg_pool import ConnectionPool

    if _closed_by_server(conn):
        ConnectionPool.check_connection(conn)


async def _check_if_closed_async(conn: Any) -> None:
    """_check_if_closed for the asynchronous pool."""
    from psycopg_pool import AsyncConnectionPool

    if _closed_by_server(conn):
        await AsyncConnectionPool.check_connection(conn)


class Reader:
    def __init__(self, settings: Settings, app: LedgerApplication) -> None:
        self.settings = settings
        self.app = app
        self.stored = bool(settings.kafka_bootstrap)
        self._pool: Any = None
        self._async_pool: Any = None  # opened by open_async(), in the server's event loop
        if self.stored:
            db = Database(settings.database_url)
            try:
                RowStore(db)  # the tables exist from here on; readers skip the DDL
            finally:
                db.close()
            if settings.is_postgres:
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    settings.database_url,
                    # Opened at start: a connection opened under load (a server process
                    # forked by PostgreSQL) was a latency spike of its own.
                    min_size=4,
                    max_size=8,
                    kwargs={"autocommit": True},
                    check=_check_if_closed,  # survive a database restart
                    name="ledger-api",
                    open=True,
                )

    @property
    def mode(self) -> str:
        return "kafka" if self.stored else "embedded"

    @property
    def store_kind(self) -> str:
        url = self.settings.database_url
        return "postgresql" if self.settings.is_postgres else url.split(":", 1)[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    async def open_async(self) -> None:
        """Open the asynchronous pool that `stored_account` reads through (PostgreSQL rows
        only; a no-op otherwise). Call it from the event loop that serves the requests."""
        if self.stored and self.settings.is_postgres and self._async_pool is None:
            from psycopg_pool import AsyncConnectionPool

            self._async_pool = AsyncConnectionPool(
                self.settings.database_url, min_size=2, max_size=8,
                kwargs={"autocommit": True}, check=_check_if_closed_async,
                name="ledger-api-async", open=False,
            )  # fmt: skip
            await self._async_pool.open()

    async def close_async(self) -> None:
        if self._async_pool is not None:
            await self._async_pool.close()
            self._async_pool = None

    async def stored_account(self, customer_id: str) -> Row | None:
        """The customer's stored `accounts` row as of now, read without leaving the event loop
        (one keyed row: the API's hottest read, a balance lookup, costs no thread hop). None
        when there is no asynchronous pool (SQLite, embedded, not opened) or the customer has
        no projected row yet: the caller then asks `account`, which decides from the events."""
        if self._async_pool is None:
            return None
        async with self._async_pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT doc FROM projection_rows WHERE projection = %s AND key = %s",
                (ACCOUNTS.name, customer_id),
            )
            found = await cursor.fetchone()
        row = parse_doc(found[0]) if found else None
        return row if row is not None and row.get("currency") else None

    @contextmanager
    def rows(self) -> Iterator[RowStore]:
        if self._pool is not None:
            with self._pool.connection() as conn:
                yield RowStore(_PooledDatabase(conn), create_schema=False)
            return
        db = Database(self.settings.database_url)
        try:
            yield RowStore(db, create_schema=False)
            db.commit()
        finally:
            db.close()

    # ---- dates ------------------------------------------------------------------------

    def today(self) -> date:
        return utc_day(self.app.clock())  # the UTC date, whatever zone the clock is in

    def resolve(self, as_of: date | None, recorded_at: datetime | None = None) -> tuple[date, bool]:
        """The day to look at, and whether it is in the past (history replayed by business
        time). As recorded at an instant, the day defaults to that instant's (UTC) date."""
        today = self.today()
        if as_of is None and recorded_at is not None:
            return recorded_at.date(), False
        day = as_of or today
        return day, day < today

    # ---- one customer -----------------------------------------------------------------

    def account(
        self, customer_id: str, as_of: date | None = None, recorded_at: datetime | None = None
    ) -> Row:
        """The customer's `accounts` projection row, now or (with `as_of`) at the end of that
        day, of the events recorded by `recorded_at` when given. Raises UnknownCustomer."""
        if as_of is None and recorded_at is None and self.stored:
            with self.rows() as store:
                row = store.load(ACCOUNTS.name, [customer_id]).get(customer_id)
            if row is not None and row.get("currency"):
                return row
            # Not projected yet (just registered) or unknown: the event store decides.
        events: Any = stream_events(self.app, customer_id)
        if recorded_at is not None:
            events = recorded_by(events, recorded_at)
        if as_of is not None:
            events = occurred_by(events, end_of(as_of))
        rows = fold(ACCOUNTS, events)
        if as_of is not None:  # never open invoices and unapplied credit together
            settle_open_items(rows)
        row = rows.get(customer_id)
        if row is None or not row.get("currency"):
            when = f" on {as_of.isoformat()}" if as_of is not None else ""
            raise UnknownCustomer(f"customer_id: {customer_id!r} is not registered{when}")
        return row

    def events(self, customer_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        """A page of the customer's history (SPEC §5). Raises UnknownCustomer."""
        found = stream_events(self.app, customer_id, after, limit)
        first = found[:1] if after == 0 else stream_events(self.app, customer_id, 0, 1)
        # Other streams (e.g. the ledger's own Microsoft remittance streams) are no customers.
        if not first or first[0]["event_type"] != "CustomerRegistered":
            raise UnknownCustomer(f"customer_id: {customer_id!r} is not registered")
        return found

    # ---- views ------------------------------------------------------------------------

    def view(
        self,
        view: str,
        as_of: date,
        historical: bool,
        recorded_at: datetime | None = None,
        **filters: Any,
    ) -> list[dict[str, Any]]:
        """A SPEC §6 view: stored rows when Kafka is configured, else (and as recorded at an
        instant) folded in-process."""
        if self.stored and not historical and recorded_at is None:
            with self.rows() as store:
                if view == "remittance":  # not every invoice's row: the summary tables
                    return summary_queries.remittance(store, filters.get("period"))
                rows = store.load_all(VIEW_SOURCE[view])
            return render_view(self.app, rows, view, as_of, **filters)
        return compute_view(self.app, view, as_of, historical=historical,
                            recorded_at=recorded_at, **filters)  # fmt: skip

    def delinquency_after(
        self, day: date, after: tuple[Any, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` rows of today's SPEC §6 `delinquency` view from the stored
        summaries (Kafka configured), in the view's order (most days past due first, then
        customer id) after the keyset position `after` = (-days_past_due, customer_id):
        ordered and cut in SQL (projections.summary_queries, as the console's worklist),
        each row made by the view's own `delinquency_row`."""
        position = None if after is None else summary_queries.AfterKey(-after[0], after[1])
        with self.rows() as store:
            ids = summary_queries.worklist_after(store.db, day, position, limit)
            found = store.load(ACCOUNTS.name, ids)
        rows = (delinquency_row(found[c], day, self.app.policies) for c in ids if c in found)
        return [row for row in rows if row is not None]

    def trial_balance_after(
        self, after: tuple[Any, ...] | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` rows of the SPEC §6 `trial-balance` view from the stored summaries
        (Kafka configured), by account then currency, after the keyset position `after` =
        (account, currency): read in SQL as the console's Audit page reads them."""
        position = None if after is None else (str(after[0]), str(after[1]))
        with self.rows() as store:
            return summary_queries.trial_balance_page(store.db, limit, after=position)

    # ---- operations -------------------------------------------------------------------

    def ping(self) -> int:
        """Touch every store the API reads; returns the event log head."""
        if self.stored:
            with self.rows() as store:
                store.db.execute("SELECT 1").fetchone()
        return self.app.head_position()
