"""One projection's rows folded apart over disjoint sets of streams, made one row set (a
rebuild on several processes: ledger/store/shardedrebuild.py).

A row that the events of one set only touch is taken as it is: every customer's rows (its
stream is in one set). A row that several sets touch is one of the rows across customers,
and each of its fields is a sum or comes from Microsoft's own streams, which are all folded
by one process, in order (ledger/store/shardedrebuild.py puts them in the first set):

- journal `account|currency`: `debit` and `credit` are sums of postings;
- remittance `period|<YYYY-MM>|<CUR>`: `cost_accrued` (customers' charges) and
  `paid_to_microsoft` are sums; `microsoft_invoices` and `payments` (Microsoft's streams)
  are unions of disjoint keys;
- microsoft `<CUR>`: `accrued` per period is a sum (customers' charges); every other field
  comes from Microsoft's streams, i.e. from one set only.

Decimal sums are exact, so sums taken apart and added equal the sums of one fold (the same
value and exponent: the exponent of a sum is the least of its terms').
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ledger.domain.microsoft import new_row
from projections.base import Row, Rows


class UnmergeableRows(ValueError):
    """Two folds both set a field that only Microsoft's streams (one fold) may set."""


def _sum(a: str, b: str) -> str:
    return str(Decimal(a) + Decimal(b))


def _sum_into(total: dict[str, str], more: dict[str, str]) -> None:
    for key, amount in more.items():
        total[key] = _sum(total[key], amount) if key in total else amount


def _journal(row: Row, other: Row) -> None:
    row["debit"] = _sum(row["debit"], other["debit"])
    row["credit"] = _sum(row["credit"], other["credit"])


def _remittance(row: Row, other: Row) -> None:
    if "cost_accrued" not in row:  # an `invoice|` row: one customer's, never in two folds
        raise UnmergeableRows(f"remittance: {row!r} was folded from two sets of streams")
    row["cost_accrued"] = _sum(row["cost_accrued"], other["cost_accrued"])
    row["paid_to_microsoft"] = _sum(row["paid_to_microsoft"], other["paid_to_microsoft"])
    for field in ("microsoft_invoices", "payments"):
        if row[field].keys() & other[field].keys():
            raise UnmergeableRows(f"remittance: {field} of {row['billing_period']} in two folds")
        row[field].update(other[field])


def _microsoft(row: Row, other: Row) -> None:
    # What a row of customers' charges only holds beyond `accrued`: the empty book's.
    empty = new_row(row["currency"])
    microsoft_only = [f for f in empty if f not in ("currency", "accrued")]
    if any(other[f] != empty[f] for f in microsoft_only):
        if any(row[f] != empty[f] for f in microsoft_only):
            raise UnmergeableRows(f"microsoft: {row['currency']}: Microsoft's events in two folds")
        for field in microsoft_only:  # `row` had customers' charges only: take the rest
            row[field] = other[field]
    _sum_into(row["accrued"], other["accrued"])


MERGES: dict[str, Callable[[Row, Row], None]] = {
    "journal": _journal,
    "remittance": _remittance,
    "microsoft": _microsoft,
}


def merge_rows(projection: str, parts: Sequence[Rows]) -> Rows:
    """The rows of `projection` folded from all the sets, given the rows of each set's fold.
    The parts' rows are taken over (changed in place). Raises UnmergeableRows when a row is
    in two parts and the projection's rows are not sums (a per-customer projection: a
    customer's stream was folded twice)."""
    merged: Rows = {}
    combine = MERGES.get(projection)
    for part in parts:
        for key, row in part.items():
            mine: Any = merged.get(key)
            if mine is None:
                merged[key] = row
            elif combine is None:
                raise UnmergeableRows(f"{projection}: row {key!r} was folded from two sets")
            else:
                combine(mine, row)
    return merged


__all__ = ["MERGES", "UnmergeableRows", "merge_rows"]
