"""Journal lines with their posting dates (SPEC §12, §13), and the trial balance as of a date
by posting date: a pure fold of published events in global (recording) order.

Ordering across streams: a line's posting date depends on which periods were closed *when
its event was recorded*. The fold takes that from the events' global position: a
`PeriodClosed` applies to every event after it in the notification log (the order of
recording), never to one before it. The as-of fold reads the event store in that order, so
it equals a rebuild whatever order Kafka delivered the partitions in. The live journal rows
(totals per account and currency, no dates) do not depend on posting dates at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from ledger.domain.periods import posting_date
from ledger.domain.postings import Posting, postings_for
from projections.base import Event, Rows, utc_date
from projections.journal import PostingTotals


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One posting of one event: `posting_date` (ISO date) and the business `occurred_at`."""

    posting_date: str
    event: Event
    posting: Posting


def journal_lines(events: Iterable[Event]) -> Iterator[JournalLine]:
    """Every posting of `events` (in global order) with its posting date."""
    closed: set[str] = set()
    for event in events:
        kind = event["event_type"]
        if kind == "PeriodClosed":
            closed.add(event["data"]["period"])
            continue
        currency = event["data"].get("currency")
        if currency is None:
            continue
        postings = postings_for(kind, event["customer_id"], currency, event["data"])
        if not postings:
            continue
        business = date.fromisoformat(utc_date(event["occurred_at"]))
        posted = posting_date(business, closed).isoformat()
        for posting in postings:
            yield JournalLine(posted, event, posting)


def journal_rows_as_of(events: Iterable[Event], as_of: date) -> Rows:
    """The journal projection's rows (account|currency → debit, credit) counting only lines
    posted on or before `as_of`: a closed period's trial balance never changes."""
    cutoff = as_of.isoformat()
    totals = PostingTotals()
    for line in journal_lines(events):
        if line.posting_date <= cutoff:
            totals.add_posting(line.posting)
    rows: Rows = {}
    totals.add_to(rows)
    return rows
