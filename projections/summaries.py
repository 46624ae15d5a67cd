"""Summary rows kept next to the JSON rows of the `accounts`, `journal` and `support`
projections, written with them (same transaction, by `RowStore.save` / `copy_docs`, so they
are exactly-once like the rows and a rebuild makes them again) and read by SQL: the console's
lists filter, order, page and sum them in the database instead of parsing every JSON row of
every customer per request (ledger/ui/summary_queries.py).

Tables (columns that SQL filters, orders or sums; the JSON row stays the source of each
page's figures):
- `customer_summaries`: one per registered customer (an accounts row with a currency):
  currency, lower-case id and name (search, order by name), suspended flag, and the oldest
  due date of its open items (it is overdue on any later day, by that many days).
- `invoice_summaries`: one per invoice and debit memo of those customers: kind, billing
  period, void flag, due date (ISO text: aging is computed in SQL on the request's day,
  never frozen here), total, paid (cash) and open remainder.
- `journal_summaries`: one per journal row (ledger account and currency): debit, credit and
  balance.
- `ticket_summaries`: one per support ticket: its status.
- `remittance_periods` and `remittance_shares`: the keys of the remittance projection's few
  `period|` rows, and each customer invoice's collected cost share per billing period and
  currency (projections.remittance.collected_shares).

Amounts are integers of 1/10,000 of the currency unit (AMOUNT_SCALE; every ISO 4217 minor
unit is at most 4 decimals), rounded half-even to the currency's minor unit first, as the
views show them (`fmt`): SQL sums them exactly on PostgreSQL and SQLite alike (no float), and
amounts of different currencies compare by value (the worklist's order by amount)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache, lru_cache
from typing import Any

import orjson

from ledger.domain.money import minor_unit
from projections.base import Row, Rows, dec
from projections.remittance import SHARE_DECIMALS, collected_shares

AMOUNT_SCALE = 4
assert SHARE_DECIMALS <= AMOUNT_SCALE  # collected shares are whole units of the scale
VERSION = 4  # raise it when a table or column changes: the tables are made and filled again
SUMMARISED = ("accounts", "journal", "support", "remittance")
_TABLES = {
    "accounts": ("customer_summaries", "invoice_summaries"),
    "journal": ("journal_summaries",),
    "support": ("ticket_summaries",),
    "remittance": ("remittance_periods", "remittance_shares"),
}
_KEY_COLUMN = {
    "customer_summaries": "customer_id",
    "invoice_summaries": "customer_id",
    "journal_summaries": "key",
    "ticket_summaries": "key",
    "remittance_periods": "key",
    "remittance_shares": "key",
}
# How many leading columns of _COLUMNS are the table's primary key.
_PRIMARY = {
    "customer_summaries": 1, "invoice_summaries": 2, "journal_summaries": 1,
    "ticket_summaries": 1, "remittance_periods": 1, "remittance_shares": 3,
}  # fmt: skip
_COLUMNS = {
    "customer_summaries": (
        "customer_id", "currency", "id_key", "name_key", "suspended", "oldest_open_due",
    ),
    "invoice_summaries": (
        "customer_id", "invoice_id", "currency", "kind", "period", "void", "due_date",
        "total", "paid", "remainder",
    ),
    "journal_summaries": ("key", "account", "currency", "debit", "credit", "balance"),
    "ticket_summaries": ("key", "customer_id", "status"),
    "remittance_periods": ("key",),
    "remittance_shares": ("key", "period", "currency", "collected"),
}  # fmt: skip


def schema(postgres: bool) -> tuple[str, ...]:
    """The tables, their indexes and the version marker. Text that SQL orders is compared
    byte by byte (COLLATE "C" on PostgreSQL, SQLite's default): Python's order of str."""
    text = 'TEXT COLLATE "C"' if postgres else "TEXT"
    # Room left in each page (PostgreSQL) for the updated version of a row, where an update
    # changes no indexed column: it then stays on its page and no index is written (a "HOT"
    # update). Most of a live batch's summary writes are updates of journal rows. Not for
    # invoices: their open-items index depends on the remainder, which updates change.
    roomy = " WITH (fillfactor = 70)" if postgres else ""
    return (
        f"""CREATE TABLE IF NOT EXISTS customer_summaries (
            customer_id {text} PRIMARY KEY, currency TEXT NOT NULL, id_key {text} NOT NULL,
            name_key {text} NOT NULL, suspended INTEGER NOT NULL, oldest_open_due {text}){roomy}""",
        f"""CREATE TABLE IF NOT EXISTS invoice_summaries (
            customer_id {text} NOT NULL, invoice_id TEXT NOT NULL, currency TEXT NOT NULL,
            kind TEXT NOT NULL, period TEXT, void INTEGER NOT NULL, due_date {text} NOT NULL,
            total BIGINT NOT NULL, paid BIGINT NOT NULL, remainder BIGINT NOT NULL,
            PRIMARY KEY (customer_id, invoice_id))""",
        # The open items (what aging and the worklist read) by due date.
        """CREATE INDEX IF NOT EXISTS invoice_summaries_open
            ON invoice_summaries (due_date, customer_id) WHERE remainder > 0""",
        f"""CREATE TABLE IF NOT EXISTS journal_summaries (
            key TEXT PRIMARY KEY, account {text} NOT NULL, currency {text} NOT NULL,
            debit BIGINT NOT NULL, credit BIGINT NOT NULL, balance BIGINT NOT NULL){roomy}""",
        # The trial balance's order: a page read in it, not all rows sorted.
        """CREATE INDEX IF NOT EXISTS journal_summaries_order
            ON journal_summaries (account, currency)""",
        f"""CREATE TABLE IF NOT EXISTS ticket_summaries (
            key TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL){roomy}""",
        # The remittance projection's `period|` rows (the few the view reads whole), and each
        # customer invoice's collected cost share (projections.remittance.collected_shares).
        "CREATE TABLE IF NOT EXISTS remittance_periods (key TEXT PRIMARY KEY)",
        f"""CREATE TABLE IF NOT EXISTS remittance_shares (
            key TEXT NOT NULL, period TEXT NOT NULL, currency TEXT NOT NULL,
            collected BIGINT NOT NULL, PRIMARY KEY (key, period, currency)){roomy}""",
        """CREATE TABLE IF NOT EXISTS summary_versions (
            name TEXT PRIMARY KEY, version INTEGER NOT NULL)""",
    )


def units(amount: Decimal, currency: str) -> int:
    """`amount` rounded half-even to the currency's minor unit (as `fmt` shows it), in
    1/10,000 of the unit."""
    step = _STEPS.get(currency)
    if step is None:
        step = _STEPS[currency] = Decimal(1).scaleb(-minor_unit(currency))
    return int(amount.quantize(step, rounding=ROUND_HALF_EVEN).scaleb(AMOUNT_SCALE))


_STEPS: dict[str, Decimal] = {}  # currency -> its minor unit as a Decimal quantum


def amount(value: int | Decimal | None) -> Decimal:
    """A summed column back to a Decimal amount of the currency unit (SUM of no row: 0)."""
    return Decimal(int(value or 0)).scaleb(-AMOUNT_SCALE)


# ---- rows to summary tuples ---------------------------------------------------------------


def summaries(projection: str, rows: Rows) -> dict[str, list[tuple[Any, ...]]]:
    """The summary tuples (in `_COLUMNS` order) of these projection rows, per table."""
    out: dict[str, list[tuple[Any, ...]]] = {table: [] for table in _TABLES[projection]}
    if projection == "accounts":
        for key, row in rows.items():
            if row and row.get("currency"):  # registered: the views' rows
                out["customer_summaries"].append(_customer(key, row))
                out["invoice_summaries"].extend(_invoices(key, row))
    elif projection == "journal":
        for key, row in rows.items():
            currency = row["currency"]
            debit, credit = dec(row["debit"]), dec(row["credit"])
            out["journal_summaries"].append(
                (key, row["account"], currency, units(debit, currency),
                 units(credit, currency), units(debit - credit, currency))
            )  # fmt: skip
    elif projection == "support":
        for key, row in rows.items():
            out["ticket_summaries"].append((key, row["customer_id"], row["status"]))
    else:
        for key, row in rows.items():
            if key.startswith("period|"):
                out["remittance_periods"].append((key,))
            elif key.startswith("invoice|"):
                out["remittance_shares"].extend(
                    (key, period, currency, int(share.scaleb(AMOUNT_SCALE)))
                    for period, currency, share in collected_shares(row)
                )
    return out


def _customer(key: str, row: Row) -> tuple[Any, ...]:
    # The earliest due date of an open item (remainder > 0): overdue on a day after it.
    currency = row["currency"]
    due = [i["due_date"] for i in row["invoices"].values() if _units(i["remainder"], currency)[1]]
    return (key, currency, key.lower(), (row["name"] or "").lower(),
            int(bool(row["suspended"])), min(due, default=None))  # fmt: skip


def _invoices(key: str, row: Row) -> Iterable[tuple[Any, ...]]:
    currency = row["currency"]
    for invoice_id, invoice in row["invoices"].items():
        # As projections.invoices.invoice_row reads a stored invoice.
        kind = invoice.get("kind") or ("debit_memo" if invoice_id.startswith("DM-") else "invoice")
        yield (
            key, invoice_id, currency, kind, invoice.get("period") or None,
            int(bool(invoice.get("void"))), invoice["due_date"],
            _units(invoice["total"], currency)[0], _units(invoice.get("paid"), currency)[0],
            _units(invoice["remainder"], currency)[0],
        )  # fmt: skip


@lru_cache(maxsize=1 << 16)
def _units(value: Any, currency: str) -> tuple[int, bool]:
    """A stored amount (a row's decimal string) in units of the tables, and whether it is
    above zero. Cached: a few amounts recur in most rows (parsing each again was most of the
    cost of the summaries)."""
    parsed = dec(value)
    return units(parsed, currency), parsed > 0


# ---- writing ------------------------------------------------------------------------------


def save(db: Any, projection: str, rows: Rows) -> None:
    """Make the summary rows of these projection rows what they are now (in the caller's
    transaction): one statement per table on PostgreSQL (two on SQLite), whatever the number
    of rows. The tuples go as one JSON array (parsed by the database: psycopg's per-element
    array encoding cost more than computing them), and the database writes only what differs
    from what it holds (a live batch changes one invoice of a customer, not all of them) and
    deletes the tuples of these keys that are gone."""
    if projection not in _TABLES or not rows:
        return
    made = summaries(projection, rows)
    keys = _json(list(rows))
    for table in _TABLES[projection]:
        tuples = _json(made[table])
        for statement, with_keys in _statements(table, db.is_postgres):
            db.execute(statement, (tuples, keys) if with_keys else (tuples,))


def tables() -> list[str]:
    """Every summary table (the version marker apart)."""
    return [table for names in _TABLES.values() for table in names]


def clear(db: Any, projection: str) -> None:
    for table in _TABLES.get(projection, ()):
        db.execute(f"DELETE FROM {table}")


def _json(values: list[Any]) -> str:
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # an int beyond 64 bits: json writes it (the BIGINT column refuses it)
        return json.dumps(values)


# Columns that hold integers (the rest are text).
_INTEGERS = frozenset({"suspended", "void", "total", "paid", "remainder", "debit", "credit",
                       "balance", "collected"})  # fmt: skip


@cache
def _statements(table: str, postgres: bool) -> tuple[tuple[str, bool], ...]:
    """The SQL that makes `table`'s tuples of some projection keys those given: parameters
    the tuples (a JSON array of arrays in _COLUMNS order), then, where the flag says so, the
    keys (a JSON array). It inserts the new tuples, updates the changed ones (matched by
    primary key; unchanged ones are not touched, not even locked) and deletes the rest."""
    columns = _COLUMNS[table]
    primary, others = columns[: _PRIMARY[table]], columns[_PRIMARY[table] :]
    names = ", ".join(columns)
    same_key = " AND ".join(f"s.{c} = f.{c}" for c in primary)
    if postgres:
        fields = ", ".join(
            f"(v->>{i}){'::bigint' if c in _INTEGERS else ''} AS {c}" for i, c in enumerate(columns)
        )
        # jsonb: parsed once (a `json` element is parsed again by every ->>).
        fresh = f"SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS v"
        # An array (an index condition: one probe per key), not a join the planner may
        # answer by scanning the table, as it estimates 100 elements.
        keys = "= ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
        same = " AND ".join(f"s.{c} IS NOT DISTINCT FROM f.{c}" for c in others)
    else:
        fields = ", ".join(f"json_extract(value, '$[{i}]') AS {c}" for i, c in enumerate(columns))
        fresh = f"SELECT {fields} FROM json_each(%s)"
        keys = "IN (SELECT value FROM json_each(%s))"
        same = " AND ".join(f"s.{c} IS f.{c}" for c in others)
    unchanged = f"SELECT 1 FROM {table} AS s WHERE {same_key}" + (f" AND {same}" if same else "")
    if postgres:  # a probe of the primary key per tuple, never a scan of the table to join
        unchanged += " OFFSET 0"
    update = (
        f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in others)}"
        if others
        else "DO NOTHING"
    )
    pk = ", ".join(primary)
    gone = " AND ".join(f"f.{c} = {table}.{c}" for c in primary)
    delete = (
        f"DELETE FROM {table} WHERE {_KEY_COLUMN[table]} {keys}"
        f" AND NOT EXISTS (SELECT 1 FROM fresh AS f WHERE {gone})"
    )
    upsert = (
        f"INSERT INTO {table} ({names}) SELECT * FROM fresh AS f WHERE NOT EXISTS ({unchanged})"
        f" ON CONFLICT ({pk}) {update}"
    )
    if postgres:  # one statement: the tuples parsed once
        return ((f"WITH fresh AS MATERIALIZED ({fresh}), gone AS ({delete}) {upsert}", True),)
    return (
        (f"WITH fresh AS ({fresh}) {delete}", True),
        (f"WITH fresh AS ({fresh}) {upsert}", False),
    )


def dump(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every summary row, per table, sorted: to compare two stores (a rebuild and the live
    projector leave the same)."""
    out = {}
    for tables in _TABLES.values():
        for table in tables:
            found = db.execute(f"SELECT {', '.join(_COLUMNS[table])} FROM {table}").fetchall()
            out[table] = sorted(tuple(int(v) if isinstance(v, Decimal) else v for v in row)
                                for row in found)  # fmt: skip
    return out


def dump_of(rows: dict[str, Rows]) -> dict[str, list[tuple[Any, ...]]]:
    """What `dump` gives once these projections' rows are saved (by projection name)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for projection, tables in _TABLES.items():
        made = summaries(projection, rows.get(projection, {}))
        for table in tables:
            out[table] = sorted(made[table])
    return out
