"""The SPEC §6 views computed in-process from the event store (embedded mode, as-of, rebuild)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from ledger.app.application import LedgerApplication
from ledger.domain.account import end_of
from ledger.domain.events import LedgerEvent
from ledger.domain.ids import normalize_id
from ledger.published import to_published
from projections.accounts import AccountsProjection, balances_view, delinquency_view
from projections.base import Projection, Rows, fold, occurred_by
from projections.invoices import invoices_view
from projections.journal import JournalProjection, trial_balance_view
from projections.margin import MarginProjection, margin_view
from projections.microsoft import MicrosoftProjection, microsoft_view
from projections.remittance import RemittanceProjection, remittance_view
from projections.support import SupportProjection, support_view
from projections.tax import tax_view
from projections.timelines import recorded_by, settle_open_items

PROJECTIONS: dict[str, Projection] = {
    p.name: p
    for p in (
        AccountsProjection(),
        JournalProjection(),
        SupportProjection(),
        RemittanceProjection(),
        MicrosoftProjection(),
        MarginProjection(),
    )
}
VIEWS = (
    "balances", "delinquency", "remittance", "support", "trial-balance", "microsoft", "margin",
    "invoices", "tax",
)  # fmt: skip
VIEW_SOURCE = {
    "balances": "accounts", "delinquency": "accounts", "remittance": "remittance",
    "support": "support", "trial-balance": "journal", "microsoft": "microsoft",
    "margin": "margin", "invoices": "accounts", "tax": "accounts",
}  # fmt: skip


class UnknownView(ValueError):
    pass


def published_events(app: LedgerApplication, start: int = 1) -> Iterator[dict[str, Any]]:
    """Every stored event in global order, in the SPEC §5 shape, personal fields in clear or
    `[erased]` (SPEC §13, ledger/app/erasure.py)."""
    reveal = app.revealer(everything=True)
    for notification in app.notifications(start=start):
        event = app.mapper.to_domain_event(notification)
        if isinstance(event, LedgerEvent):
            yield reveal(to_published(event, notification.id))


def project_rows(
    app: LedgerApplication,
    projection: str,
    as_of: date | None = None,
    recorded_at: datetime | None = None,
) -> Rows:
    """A projection's rows folded from the event store: only events recorded by
    `recorded_at` (aware instant) when given, and by business time up to the end of `as_of`
    when given (the journal by posting date; accounts settled, projections.timelines)."""
    events: Any = published_events(app)
    if recorded_at is not None:
        events = recorded_by(events, recorded_at)
    if as_of is not None and projection == "journal":  # by posting date (SPEC §13)
        from projections.posting_dates import journal_rows_as_of

        return journal_rows_as_of(events, as_of)
    if as_of is not None:
        events = occurred_by(events, end_of(as_of))
    rows = fold(PROJECTIONS[projection], events)
    if as_of is not None and projection == "accounts":
        settle_open_items(rows)
    return rows


def render_view(
    app: LedgerApplication,
    rows: Rows,
    view: str,
    as_of: date,
    *,
    customer_id: str | None = None,
    status: str | None = None,
    period: str | None = None,
) -> list[dict[str, Any]]:
    """Turn projection rows into the SPEC §6 rows of `view` for `as_of`."""
    if view == "balances":
        out = balances_view(rows, as_of)
    elif view == "delinquency":
        out = delinquency_view(rows, as_of, app.policies)
    elif view == "trial-balance":
        return trial_balance_view(rows)
    elif view == "support":
        out = support_view(rows, status)
    elif view == "remittance":
        return remittance_view(rows, period)
    elif view == "microsoft":
        return microsoft_view(rows, as_of)
    elif view == "margin":
        return margin_view(rows, period, customer_id)
    elif view == "tax":
        return tax_view(rows, period)
    elif view == "invoices":
        wanted_id = None if customer_id is None else normalize_id(customer_id)
        return invoices_view(rows, as_of, wanted_id)
    else:
        raise UnknownView(f"view: {view!r} is not one of {', '.join(VIEWS)}")
    wanted = None if customer_id is None else normalize_id(customer_id)  # SPEC §2
    return [r for r in out if wanted is None or r["customer_id"] == wanted]


def compute_view(
    app: LedgerApplication,
    view: str,
    as_of: date,
    *,
    historical: bool = False,
    recorded_at: datetime | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """A view folded in-process from the event store (`historical`: only events up to as_of;
    `recorded_at`: only events recorded by that instant)."""
    if view not in VIEW_SOURCE:
        raise UnknownView(f"view: {view!r} is not one of {', '.join(VIEWS)}")
    rows = project_rows(app, VIEW_SOURCE[view], as_of if historical else None, recorded_at)
    return render_view(app, rows, view, as_of, **filters)
