"""The two time axes of a past view (SPEC §13): business time (`as_of`: what was true on a
date, as we know it now) and recording time (`as_recorded_at`: exactly what the ledger
showed at an instant). Pure functions over published events and accounts rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal

from projections.base import Event, Rows, dec, utc_instant


def recorded_by(events: Iterable[Event], instant: datetime) -> Iterator[Event]:
    """The events recorded at or before `instant` (aware), in the order given (the global,
    recording order). Filtered, not cut at the first later one: concurrent writers may
    commit with timestamps slightly out of order."""
    return (e for e in events if utc_instant(e["recorded_at"]) <= instant)


def settle_open_items(rows: Rows) -> Rows:
    """Business-time replay can put a backdated payment (recorded later) next to an invoice
    that a later credit settled: open invoices and unapplied credit together, which the
    ledger never shows (it applies credit as soon as both exist, SPEC §13). This applies each
    row's unapplied credit to its open invoices, oldest due date first (the aggregate's
    order), in place; returns `rows`. Amounts move between `remainder` and
    `unapplied_credit` only: `paid`/`credited` totals stay as recorded."""
    for row in rows.values():
        credit = dec(row.get("unapplied_credit"))
        if credit <= 0:
            continue
        open_items = sorted(
            ((iid, inv) for iid, inv in row["invoices"].items() if dec(inv["remainder"]) > 0),
            key=lambda item: (item[1]["due_date"], item[0]),
        )
        for _, invoice in open_items:
            if credit <= 0:
                break
            amount = min(credit, dec(invoice["remainder"]))
            invoice["remainder"] = str(dec(invoice["remainder"]) - amount)
            credit -= amount
        row["unapplied_credit"] = str(credit if credit > 0 else Decimal(0))
    return rows
