"""`GET /microsoft` (SPEC §11) and the Microsoft gauges of `/metrics`: the partner's position
with Microsoft per billing currency, so an operator can alert on credit use and days past
due before Microsoft warns or suspends the partner."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

import structlog
from fastapi import APIRouter
from prometheus_client import Gauge
from pydantic import BaseModel

from ledger.api import errors
from ledger.api.data import Reader
from ledger.api.models import Amount, Currency, PageOf, Row
from ledger.api.pagination import DEFAULT_LIMIT, paginate
from ledger.api.routes import AsOf, AsRecordedAt, Cursor, Limit, ReaderDep, list_errors, reader_role

log = structlog.get_logger(__name__)
router = APIRouter()

CREDIT_USED_PERCENT = Gauge(
    "ledger_microsoft_credit_used_percent",
    "Credit used with Microsoft, percent of the credit limit (-1: no limit recorded)",
    ["currency"],
)
OLDEST_DAYS_PAST_DUE = Gauge(
    "ledger_microsoft_oldest_days_past_due",
    "Days past due of the oldest open Microsoft invoice (Microsoft suspends past 60)",
    ["currency"],
)


class MicrosoftInvoice(BaseModel):
    invoice_number: str
    billing_period: str
    amount: Amount
    invoice_date: date
    due_date: date
    paid: Amount
    open: Amount
    days_past_due: int


class MicrosoftPosition(Row):
    """SPEC §11 `microsoft` row: one per Microsoft billing currency."""

    currency: Currency
    credit_limit: Amount | None
    credit_used: Amount
    credit_used_percent: str | None
    credit_status: Literal["ok", "warning_70", "warning_85", "at_limit"]
    invoices: list[MicrosoftInvoice]
    oldest_days_past_due: int
    partner_status: Literal["current", "overdue", "suspension_risk", "suspendable"]
    unallocated: Amount


@router.get(
    "/microsoft", response_model=PageOf[MicrosoftPosition], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_microsoft(
    reader: ReaderDep,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """The partner's position with Microsoft per billing currency (SPEC §11): credit limit
    and use, invoices with what is paid and open, days past due, partner status."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    rows = reader.view("microsoft", day, historical, as_recorded_at)
    return paginate(rows, lambda r: (r["currency"],), (str,), "microsoft", limit,
                    cursor).body()  # fmt: skip


def refresh_microsoft_gauges(reader: Reader) -> None:
    """Set the Microsoft gauges from today's view (a failure is logged, never a 500)."""
    try:
        rows = reader.view("microsoft", reader.today(), False)
    except errors.STORE_UNAVAILABLE as error:
        log.warning("api.metrics_microsoft_unavailable", error=str(error))
        return
    for row in rows:
        percent = row["credit_used_percent"]
        CREDIT_USED_PERCENT.labels(row["currency"]).set(
            float(Decimal(percent)) if percent is not None else -1.0
        )
        OLDEST_DAYS_PAST_DUE.labels(row["currency"]).set(row["oldest_days_past_due"])
