"""The queries over the summary tables (projections/summaries.py): the same SQL on PostgreSQL
and SQLite, for a day given at request time (aging and days past due are never stored).

What each returns is what the Python views give for the same rows (projections.accounts
`balance_row` / `delinquency_row`, projections.invoices `invoice_row`): a customer is
overdue when an open item (remainder > 0) is due before the day; its days past due are the
day minus its oldest such due date; aging buckets are those of `_bucket`. Lists return
customer ids in the page's order; the page's figures are then the views' own rows of just
those customers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt
from projections.accounts import AGING_BUCKETS
from projections.remittance import remittance_view
from projections.summaries import amount

NEVER = "9999-12-31"  # the sort key of a customer with nothing overdue: 0 days past due
# The worklist (SPEC §6 `delinquency`): customers with something overdue on the day (an open
# item due before it), or suspended; `oldest`: the due date its days past due count from.
# Parameters: the day, twice.
_LISTED = f"""SELECT customer_id, name_key,
        CASE WHEN oldest_open_due < %s THEN oldest_open_due ELSE '{NEVER}' END AS oldest
    FROM customer_summaries WHERE oldest_open_due < %s OR suspended = 1"""
# Per customer, the sum of its items open and due before the day (parameter: the day).
_OWED = """SELECT customer_id, SUM(remainder) AS owed FROM invoice_summaries
    WHERE remainder > 0 AND due_date < %s GROUP BY customer_id"""
# sort -> (ORDER BY for descending, for ascending); ties by customer id, in the same direction
# as the Python sort of (key, customer_id) with reverse=. Oldest first = most days first.
WORKLIST_ORDER = {
    "days": ("c.oldest ASC, c.customer_id DESC", "c.oldest DESC, c.customer_id ASC"),
    "amount": (
        "COALESCE(o.owed, 0) DESC, c.customer_id DESC",
        "COALESCE(o.owed, 0) ASC, c.customer_id ASC",
    ),
    "name": ("c.name_key DESC, c.customer_id DESC", "c.name_key ASC, c.customer_id ASC"),
}


@dataclass(frozen=True)
class AfterKey:
    """A keyset position in the API's worklist order (-days_past_due, customer_id)."""

    days_past_due: int
    customer_id: str


def worklist_count(db: Any, day: date) -> int:
    text = day.isoformat()
    return int(db.execute(f"SELECT COUNT(*) FROM ({_LISTED}) c", (text, text)).fetchone()[0])


def worklist(
    db: Any, day: date, sort: str, descending: bool, offset: int, limit: int
) -> tuple[int, list[str]]:
    """The worklist's length and the customer ids of one page of it in the console's
    order (`sort`: days, amount or name). Past the end: no ids, the length still right.
    Only the order by amount sums the open items (per customer, due before the day)."""
    text = day.isoformat()
    order = WORKLIST_ORDER[sort][0 if descending else 1]
    owed, params = "", [text, text]
    if sort == "amount":
        owed = f" LEFT JOIN ({_OWED}) o ON o.customer_id = c.customer_id"
        params.append(text)
    sql = (
        f"SELECT c.customer_id, COUNT(*) OVER () FROM ({_LISTED}) c{owed} ORDER BY {order}"
        " LIMIT %s OFFSET %s"
    )
    return _counted(db.execute(sql, (*params, limit, offset)).fetchall(),
                    lambda: worklist_count(db, day))  # fmt: skip


def _counted(found: list[tuple[str, int]], count: Callable[[], int]) -> tuple[int, list[str]]:
    """(total, ids) from rows of (id, COUNT(*) OVER ()): one query for a page and its
    total; a page past the end has no row to carry the total, so it is counted apart."""
    if not found:
        return count(), []
    return int(found[0][1]), [key for key, _ in found]


def worklist_after(db: Any, day: date, after: AfterKey | None, limit: int) -> list[str]:
    """Customer ids of the worklist in the API's order (most days past due first, then
    customer id), from just after `after` (keyset paging: `GET /delinquency`'s cursor)."""
    params: list[Any] = [day.isoformat(), day.isoformat()]
    where = ""
    if after is not None:
        oldest = (
            (day - timedelta(days=after.days_past_due)).isoformat()
            if after.days_past_due > 0
            else NEVER
        )
        where = " WHERE c.oldest > %s OR (c.oldest = %s AND c.customer_id > %s)"
        params += [oldest, oldest, after.customer_id]
    sql = (
        f"SELECT c.customer_id FROM ({_LISTED}) c{where} ORDER BY c.oldest, c.customer_id LIMIT %s"
    )
    return [c for (c,) in db.execute(sql, (*params, limit)).fetchall()]


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_SEARCH = "FROM customer_summaries WHERE id_key LIKE %s ESCAPE '\\' OR name_key LIKE %s ESCAPE '\\'"


def search_count(db: Any, needle: str) -> int:
    """How many customers' id or name contains `needle` (lower case)."""
    pattern = _like(needle)
    return int(db.execute(f"SELECT COUNT(*) {_SEARCH}", (pattern, pattern)).fetchone()[0])


def search(db: Any, needle: str, offset: int, limit: int) -> tuple[int, list[str]]:
    """How many customers' id or name contains `needle` (lower case), and the ids of one
    page of them, by id."""
    pattern = _like(needle)
    sql = f"SELECT customer_id, COUNT(*) OVER () {_SEARCH} ORDER BY customer_id LIMIT %s OFFSET %s"
    return _counted(db.execute(sql, (pattern, pattern, limit, offset)).fetchall(),
                    lambda: search_count(db, needle))  # fmt: skip


@dataclass(frozen=True)
class Receivables:
    """The overview's figures of the accounts receivable on a day."""

    aging: dict[str, dict[str, Decimal]]  # currency -> AGING_BUCKETS -> open amount
    months: list[tuple[str, str, Decimal, Decimal, Decimal]]
    counts: dict[str, int]  # customers, delinquent (on the worklist), suspended


def receivables(db: Any, day: date) -> Receivables:
    """Aging: per currency, the open items' remainders per bucket on `day` (the sum of the
    `balances` rows' `aging`; every registered customer's currency shown). Months: per
    billing period and currency of the invoices (not debit memos, not void, with a billing
    period), (period, currency, invoiced, cash collected, open and overdue on `day`), by
    period then currency. Counts: registered customers, those on the worklist, those
    suspended. Two queries: one over the customers, one over the invoices."""
    text = day.isoformat()
    edges = [(day - timedelta(days=n)).isoformat() for n in (0, 30, 60, 90)]
    customers = """SELECT currency, COUNT(*), SUM(suspended),
            SUM(CASE WHEN oldest_open_due < %s OR suspended = 1 THEN 1 ELSE 0 END)
        FROM customer_summaries GROUP BY currency"""
    invoices = """SELECT currency, period,
            CASE WHEN kind = 'invoice' AND period IS NOT NULL AND void = 0 THEN 1 ELSE 0 END,
            CASE WHEN remainder <= 0 THEN NULL
            WHEN due_date >= %s THEN 'current' WHEN due_date >= %s THEN 'd1_30'
            WHEN due_date >= %s THEN 'd31_60' WHEN due_date >= %s THEN 'd61_90'
            ELSE 'd90_plus' END, SUM(total), SUM(paid), SUM(remainder)
        FROM invoice_summaries GROUP BY 1, 2, 3, 4"""
    aging: dict[str, dict[str, Decimal]] = {}
    counts = dict.fromkeys(("customers", "delinquent", "suspended"), 0)
    for currency, number, suspended, listed in db.execute(customers, (text,)).fetchall():
        aging[currency] = dict.fromkeys(AGING_BUCKETS, Decimal(0))
        counts["customers"] += int(number)
        counts["suspended"] += int(suspended or 0)
        counts["delinquent"] += int(listed or 0)
    months: dict[tuple[str, str], list[Decimal]] = {}
    for currency, period, billed, bucket, total, paid, open_ in db.execute(
        invoices, tuple(edges)
    ).fetchall():
        if bucket is not None and currency in aging:
            aging[currency][bucket] += amount(open_)
        if billed:
            sums = months.setdefault((period, currency), [Decimal(0)] * 3)
            sums[0] += amount(total)
            sums[1] += amount(paid)
            if bucket not in (None, "current"):  # open and due before the day
                sums[2] += amount(open_)
    return Receivables(
        aging=aging,
        months=[(p, c, *sums) for (p, c), sums in sorted(months.items())],  # type: ignore[misc]
        counts=counts,
    )


def ticket_counts(db: Any) -> dict[str, int]:
    """Support tickets per status."""
    sql = "SELECT status, COUNT(*) FROM ticket_summaries GROUP BY status"
    return {status: int(n) for status, n in db.execute(sql).fetchall()}


def trial_balance_totals(db: Any) -> tuple[int, dict[str, tuple[Decimal, Decimal]]]:
    """The number of trial balance rows, and per currency the sum of their debits and
    credits."""
    sql = """SELECT currency, COUNT(*), SUM(debit), SUM(credit) FROM journal_summaries
        GROUP BY currency ORDER BY currency"""
    found = db.execute(sql).fetchall()
    return sum(int(n) for _, n, _, _ in found), {c: (amount(d), amount(k)) for c, _, d, k in found}


def trial_balance_page(
    db: Any, limit: int, offset: int = 0, after: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """One page of the SPEC §6 `trial-balance` rows (as projections.journal's
    `trial_balance_view` makes them), by account then currency: from `offset` (the console's
    pages) or after the (account, currency) `after` (keyset: the API's cursor)."""
    params: list[Any] = [limit, offset]
    where = ""
    if after is not None:
        where, params = " WHERE (account, currency) > (%s, %s)", [*after, limit, offset]
    sql = f"""SELECT account, currency, debit, credit, balance FROM journal_summaries{where}
        ORDER BY account, currency LIMIT %s OFFSET %s"""
    return [
        {"account": account, "currency": currency, "debit": fmt(amount(debit), currency),
         "credit": fmt(amount(credit), currency), "balance": fmt(amount(balance), currency)}
        for account, currency, debit, credit, balance in db.execute(sql, tuple(params)).fetchall()
    ]  # fmt: skip


def remittance(store: Any, period: str | None = None) -> list[dict[str, Any]]:
    """The SPEC §6 `remittance` rows (projections.remittance.remittance_view) from the
    `period|` rows and the invoices' collected shares summed in SQL: not every customer
    invoice's row parsed. `store`: a projections.store.RowStore."""
    keys = [k for (k,) in store.db.execute("SELECT key FROM remittance_periods").fetchall()]
    sql = "SELECT period, currency, SUM(collected) FROM remittance_shares GROUP BY 1, 2"
    collected = {(p, c): amount(n) for p, c, n in store.db.execute(sql).fetchall()}
    return remittance_view(store.load("remittance", keys), period, collected)
