"""The console's Audit page (SPEC §13, §15; auditor and admin only): verify the store,
the checkpoints, the trial balance, and downloads of the trial balance and the journal."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from ledger.ui import data
from ledger.ui.session import Session
from ledger.ui.web import PAGE_SIZE, Page, _reader, checked_form, paged, render, signed_in

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, page: Page = 1) -> Response:
    session = signed_in(request, "auditor")
    return _audit(request, session, None, page)


def _audit(request: Request, session: Session, verification: Any, page: int = 1) -> Response:
    reader = _reader(request)
    trial = reader.view("trial-balance", reader.today(), False)
    trial.sort(key=lambda r: (r["account"], r["currency"]))  # the API's order
    totals: dict[str, list[Decimal]] = {}
    for row in trial:
        sums = totals.setdefault(row["currency"], [Decimal(0), Decimal(0)])
        sums[0] += Decimal(row["debit"])
        sums[1] += Decimal(row["credit"])
    return render(
        request,
        "audit.html",
        session=session,
        trial=paged(trial, page),
        totals=totals,
        checkpoints=data.checkpoints(reader, PAGE_SIZE),
        verification=verification,
        day=reader.today(),
    )


@router.post("/audit/verify", response_class=HTMLResponse)
async def audit_verify(request: Request) -> Response:
    """`ledger audit verify`: every chain, then every checkpoint kept in the database."""
    from ledger.app.checkpoints import verify
    from ledger.store.checkpoints import CheckpointStore
    from ledger.store.db import Database

    session = signed_in(request, "auditor")
    await checked_form(request, session)
    reader = _reader(request)
    settings = reader.settings

    def run() -> Any:
        db = Database(settings.database_url)
        try:
            sources = CheckpointStore(db).lines()
        finally:
            db.close()
        return verify(reader.app, settings.audit_key_bytes(), sources)

    return _audit(request, session, await run_in_threadpool(run))


@router.get("/audit/trial-balance.csv")
def trial_balance_csv(request: Request) -> Response:
    """The trial balance of today as CSV (the `GET /trial-balance` rows)."""
    signed_in(request, "auditor")
    reader = _reader(request)
    rows = reader.view("trial-balance", reader.today(), False)
    out = io.StringIO()
    writer = csv.DictWriter(
        out, ["account", "currency", "debit", "credit", "balance"], lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return _csv(out.getvalue(), f"trial-balance-{reader.today()}.csv")


JOURNAL_COLUMNS = [
    "posting_date",
    "occurred_at",
    "global_position",
    "event_id",
    "event_type",
    "customer_id",
    "account",
    "currency",
    "debit",
    "credit",
]


@router.get("/audit/journal.csv")
def journal_csv(request: Request) -> Response:
    """Every journal line (SPEC §12) with its posting date, in recording order, as CSV: the
    lines whose sums are the trial balance. Streamed: the store is read as it is written."""
    from ledger.app.views import published_events
    from projections.posting_dates import journal_lines

    signed_in(request, "auditor")
    reader = _reader(request)

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(JOURNAL_COLUMNS)
        for line in journal_lines(published_events(reader.app)):
            event, posting = line.event, line.posting
            writer.writerow(
                [
                    line.posting_date,
                    event["occurred_at"],
                    event["global_position"],
                    event["event_id"],
                    event["event_type"],
                    event["customer_id"],
                    posting.account,
                    posting.currency,
                    posting.debit,
                    posting.credit,
                ]
            )
            if out.tell() > 65536:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="journal-{reader.today()}.csv"',
            "Cache-Control": "no-store",
        },
    )


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
