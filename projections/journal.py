"""The double-entry journal folded into one row per account and currency (trial balance)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ledger.domain.money import fmt
from ledger.domain.postings import Posting, postings_for
from projections.base import Event, Folder, Prepared, Row, Rows, dec


def _currency(event: Event) -> str | None:
    return event["data"].get("currency")


def _postings(event: Event) -> list[Posting]:
    currency = _currency(event)
    if currency is None:
        return []
    return postings_for(event["event_type"], event["customer_id"], currency, event["data"])


class JournalProjection:
    name = "journal"

    def __init__(self) -> None:
        # keys() and then apply() for each of an event's rows ask for the same postings:
        # work them out once per event (the fold hands the same event object to both).
        self._last: tuple[Event | None, list[Posting]] = (None, [])

    def _postings_of(self, event: Event) -> list[Posting]:
        if self._last[0] is not event:
            self._last = (event, _postings(event))
        return self._last[1]

    def keys(self, event: Event) -> list[str]:
        return sorted({f"{p.account}|{p.currency}" for p in self._postings_of(event)})

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        account, currency = key.rsplit("|", 1)
        row = row or _new_row(key)
        for posting in self._postings_of(event):
            if posting.account == account and posting.currency == currency:
                row["debit"] = str(dec(row["debit"]) + posting.debit)
                row["credit"] = str(dec(row["credit"]) + posting.credit)
        return row

    def prepare_batch(self, events: Sequence[Event]) -> Prepared:
        """A batch's postings summed per row first, then added to each row once: the same
        rows as event by event (Decimal sums are exact), without a row update and two
        string round trips per posting."""
        totals = PostingTotals()
        for event in events:
            totals.add(event)
        return Prepared(set(totals.sums), totals.add_to)

    def folder(self, rows: Rows) -> Folder:
        return _JournalFolder(rows)


class PostingTotals:
    """Debit and credit sums per journal row (`account|currency`) of the events added."""

    def __init__(self) -> None:
        self.sums: dict[str, list[Decimal]] = {}

    def add(self, event: Event) -> None:
        for posting in _postings(event):
            self.add_posting(posting)

    def add_posting(self, posting: Posting) -> None:
        key = f"{posting.account}|{posting.currency}"
        total = self.sums.get(key)
        if total is None:
            self.sums[key] = [posting.debit, posting.credit]
        else:
            total[0] += posting.debit
            total[1] += posting.credit

    def add_to(self, rows: Rows) -> None:
        for key, (debit, credit) in self.sums.items():
            row = rows.get(key) or _new_row(key)
            row["debit"] = str(dec(row["debit"]) + debit)
            row["credit"] = str(dec(row["credit"]) + credit)
            rows[key] = row


class _JournalFolder(Folder):
    """Sums every posting and adds the sums to the rows at the end."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.totals = PostingTotals()

    def __call__(self, event: Event) -> None:
        self.totals.add(event)

    def finish(self) -> None:
        self.totals.add_to(self.rows)
        self.totals = PostingTotals()


def _new_row(key: str) -> Row:
    account, currency = key.rsplit("|", 1)
    return {"account": account, "currency": currency, "debit": "0", "credit": "0"}


def trial_balance_view(rows: Rows) -> list[dict[str, Any]]:
    out = []
    for _, row in sorted(rows.items()):
        debit, credit, currency = dec(row["debit"]), dec(row["credit"]), row["currency"]
        out.append(
            {
                "account": row["account"],
                "currency": currency,
                "debit": fmt(debit, currency),
                "credit": fmt(credit, currency),
                "balance": fmt(debit - credit, currency),
            }
        )
    return out


def totals_by_currency(view: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Sum of balances per currency: zero when the books balance."""
    sums: dict[str, Decimal] = {}
    for row in view:
        sums[row["currency"]] = sums.get(row["currency"], Decimal(0)) + dec(row["balance"])
    return sums
