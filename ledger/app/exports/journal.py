"""The journal export (SPEC §12, §13): one row per journal line whose posting date falls in
[start, end], streamed from the events in global (recording) order.

The lines are the journal projection's own: `projections.posting_dates.journal_lines`, which
derives them with `ledger.domain.postings.postings_for` and dates them by the closed-period
rule (`ledger.domain.periods.posting_date`). Whatever event kinds the posting rules learn,
the export carries them, and its rows sum to the trial balance.

Double entry (accounting practice: every entry's debits equal its credits) is checked as the
rows go: each event's lines per currency before any of them is written, and the totals per
currency at the end. A failure raises `UnbalancedExport` naming the event and currency.
Memory stays flat: one event's lines and the running totals per currency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import groupby
from typing import Any

from ledger.domain.errors import LedgerError
from ledger.domain.money import fmt
from ledger.domain.periods import PERIOD_EVENT_TYPES
from ledger.domain.remittance import REMITTANCE_EVENT_TYPES
from projections.base import Event
from projections.posting_dates import JournalLine, journal_lines

JOURNAL_COLUMNS = (
    "entry_id", "posting_date", "occurred_at", "account", "customer_id", "currency",
    "debit", "credit", "event_type", "reference", "memo",
)  # fmt: skip
# The business id an entry is about: its own document for the known kinds (a payment
# applied names the invoice it settles); for any other kind the first of REFERENCE_FIELDS.
OWN_REFERENCE = {
    "ChargePosted": "charge_id", "InvoiceIssued": "invoice_id", "DebitMemoIssued": "invoice_id",
    "PaymentReceived": "payment_id", "PaymentReversed": "payment_id",
    "CreditNoteIssued": "credit_id", "RefundIssued": "refund_id",
    "PaymentApplied": "invoice_id", "PaymentUnapplied": "invoice_id",
}  # fmt: skip
REFERENCE_FIELDS = (
    "invoice_id", "charge_id", "payment_id", "credit_id", "refund_id", "write_off_id",
    "invoice_number", "reference", "billing_period",
)  # fmt: skip
# Other documents an entry names, said in its memo (`invoice INV-…`, `write_off W-1`).
ID_FIELDS = REFERENCE_FIELDS[:6]
MEMO_FIELDS = ("description", "reason", "method")
ZERO = Decimal(0)


class UnbalancedExport(LedgerError):
    """Debits and credits of an export differ in a currency (a posting rule is wrong)."""

    code = "unbalanced_export"


@dataclass
class ExportTotals:
    """What an export wrote: events read, rows written, debit and credit sums per currency."""

    events: int = 0
    rows: int = 0
    debit: dict[str, Decimal] = field(default_factory=dict)
    credit: dict[str, Decimal] = field(default_factory=dict)

    def add(self, currency: str, debit: Decimal, credit: Decimal) -> None:
        self.debit[currency] = self.debit.get(currency, ZERO) + debit
        self.credit[currency] = self.credit.get(currency, ZERO) + credit

    def check(self) -> None:
        """Raise UnbalancedExport when debits differ from credits in a currency."""
        for currency in sorted(self.debit):
            if self.debit[currency] != self.credit[currency]:
                raise UnbalancedExport(
                    f"journal export: {currency} debits {self.debit[currency]} differ from "
                    f"credits {self.credit[currency]}",
                    field="currency",
                )


def journal_export(
    events: Iterable[Event],
    start: date,
    end: date,
    totals: ExportTotals | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict[str, str]]:
    """Rows (JOURNAL_COLUMNS, amounts as decimal strings with the currency's minor units) of
    every journal line posted from `start` to `end` inclusive. `events`: SPEC §5 events in
    global order, all of them (the posting date of a line depends on every period closed
    before it was recorded). `totals` (when given) is filled as rows go; `progress` is called
    with the number of events read so far, every 1,000 events. Raises UnbalancedExport."""
    totals = ExportTotals() if totals is None else totals
    counted = _counting(events, totals, progress)
    yield from export_lines(journal_lines(counted), start, end, totals)


def export_lines(
    lines: Iterable[JournalLine], start: date, end: date, totals: ExportTotals
) -> Iterator[dict[str, str]]:
    """The rows of `lines` posted in [start, end], each event's lines checked for balance
    per currency before any is yielded, the totals at the end."""
    first, last = start.isoformat(), end.isoformat()
    for _, grouped in groupby(lines, key=lambda line: line.event["event_id"]):
        entry = list(grouped)
        posted = entry[0].posting_date
        if not first <= posted <= last:
            continue
        _check_entry(entry)
        shared = entry_fields(entry[0])
        for line in entry:
            p = line.posting
            totals.add(p.currency, p.debit, p.credit)
            totals.rows += 1
            yield {
                **shared, "account": p.account, "currency": p.currency,
                "debit": _amount(p.debit, p.currency), "credit": _amount(p.credit, p.currency),
            }  # fmt: skip
    totals.check()


def entry_fields(line: JournalLine) -> dict[str, str]:
    """What every line of an entry shares, with its own columns as placeholders, so that
    the row's keys come in JOURNAL_COLUMNS order."""
    event = line.event
    data = event["data"]
    own = OWN_REFERENCE.get(event["event_type"])
    reference = str(data.get(own) or "") if own else _first(data, REFERENCE_FIELDS)
    return {
        "entry_id": event["event_id"], "posting_date": line.posting_date,
        "occurred_at": event["occurred_at"], "account": "", "customer_id": customer_of(event),
        "currency": "", "debit": "", "credit": "", "event_type": event["event_type"],
        "reference": reference, "memo": memo_of(data, reference),
    }  # fmt: skip


def _amount(amount: Decimal, currency: str) -> str:
    return _zero(currency) if amount == 0 else fmt(amount, currency)


@lru_cache(maxsize=64)
def _zero(currency: str) -> str:
    return fmt(ZERO, currency)


def customer_of(event: Event) -> str:
    """The customer an entry belongs to; empty for the partner's own streams (Microsoft
    remittance and account, closed periods), whose ids are not customers."""
    kind = event["event_type"]
    if kind in REMITTANCE_EVENT_TYPES or kind in PERIOD_EVENT_TYPES:
        return ""
    return str(event["customer_id"])


def memo_of(data: dict[str, Any], reference: str = "") -> str:
    """A short human note: what settled what (`payment PAY-1`), the other documents the
    entry names besides `reference` (`invoice INV-…`), the charge's description, the reason
    or the payment method."""
    parts = []
    if data.get("source_type") and data.get("source_id"):
        parts.append(f"{data['source_type']} {data['source_id']}")
    for name in ID_FIELDS:
        value = data.get(name)
        if value and str(value) != reference:
            parts.append(f"{name.removesuffix('_id')} {value}")
    text = _first(data, MEMO_FIELDS)
    if text:
        parts.append(text)
    return "; ".join(parts)


def _first(data: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = data.get(name)
        if value not in (None, ""):
            return str(value)
    return ""


def _check_entry(entry: list[JournalLine]) -> None:
    sums: dict[str, Decimal] = {}
    for line in entry:
        p = line.posting
        sums[p.currency] = sums.get(p.currency, ZERO) + p.debit - p.credit
    for currency, difference in sorted(sums.items()):
        if difference != 0:
            event = entry[0].event
            raise UnbalancedExport(
                f"journal export: entry {event['event_id']} ({event['event_type']} of "
                f"{event['customer_id']}) is off by {difference} {currency}",
                field="entry_id",
            )


def _counting(
    events: Iterable[Event], totals: ExportTotals, progress: Callable[[int], None] | None
) -> Iterator[Event]:
    for event in events:
        totals.events += 1
        if progress is not None and totals.events % 1000 == 0:
            progress(totals.events)
        yield event
    if progress is not None:
        progress(totals.events)
