"""The SPEC §11 `microsoft` view: the partner's position with Microsoft per billing currency
(credit limit and use, invoices with what is paid and open, days past due, partner status,
unallocated money). One row per currency; the fold and the figures are the domain's
(ledger.domain.microsoft), so the view, `ledger microsoft check` and payments agree."""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.domain.microsoft import apply_to_row, book_currency, position
from projections.base import Event, Row, Rows


class MicrosoftProjection:
    name = "microsoft"

    def keys(self, event: Event) -> list[str]:
        currency = book_currency(event)
        return [currency] if currency is not None else []

    def apply(self, key: str, row: Row | None, event: Event) -> Row:
        return apply_to_row(row, event)


def microsoft_view(rows: Rows, as_of: date) -> list[dict[str, Any]]:
    """One SPEC §11 row per Microsoft billing currency, on `as_of`."""
    return [position(row, as_of) for _, row in sorted(rows.items())]
