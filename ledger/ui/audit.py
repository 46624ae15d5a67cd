"""The console's Audit page (SPEC §13, §15; auditor and admin only): verify the store,
the checkpoints, the trial balance, and downloads of the trial balance and the journal."""

from __future__ import annotations

import csv
import io
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from ledger.ui import data
from ledger.ui.session import Session
from ledger.ui.web import PAGE_SIZE, Page, _reader, checked_form, render, signed_in

router = APIRouter(prefix="/ui", include_in_schema=False)
log = structlog.get_logger(__name__)
CHUNK = 65536  # characters of CSV per piece of a streamed download


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, page: Page = 1) -> Response:
    session = signed_in(request, "auditor")
    return _audit(request, session, None, page)


def _audit(request: Request, session: Session, verification: Any, page: int = 1) -> Response:
    reader = _reader(request)
    trial = data.trial_balance(reader, page)  # by account and currency, as the API
    return render(
        request,
        "audit.html",
        session=session,
        trial=trial,
        totals=trial.pop("totals"),
        checkpoints=data.checkpoints(reader, PAGE_SIZE),
        verification=verification,
        day=reader.today(),
        year_start=reader.today().replace(month=1, day=1),
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
    columns = ("account", "currency", "debit", "credit", "balance")
    return _download(csv_chunks(rows, columns), f"trial-balance-{reader.today()}.csv")


@router.get("/audit/journal.csv")
def journal_csv(
    request: Request,
    start: Annotated[str, Query(alias="from", max_length=40)] = "",
    end: Annotated[str, Query(alias="to", max_length=40)] = "",
) -> Response:
    """`ledger export journal --from --to` as a download: the same rows and columns
    (ledger/app/exports/journal.py `journal_export`: every journal line posted in [from, to],
    each entry balanced per currency before it is written, the totals at the end), streamed
    as the events are read. An unbalanced export stops the download short (the transfer
    fails; the cause is logged), never a file that looks complete. A date that is not
    YYYY-MM-DD, or from after to: a 422 page naming the field."""
    from ledger.app.exports.journal import JOURNAL_COLUMNS, journal_export
    from ledger.app.views import published_events

    session = signed_in(request, "auditor")
    reader = _reader(request)
    first, last = _day(start), _day(end)
    problem = (
        "from: give the first posting date as YYYY-MM-DD" if first is None
        else "to: give the last posting date as YYYY-MM-DD" if last is None
        else f"from: {first} is after to {last}" if first > last
        else None
    )  # fmt: skip
    if problem is not None:
        return render(
            request, "error.html", 422, session, title="Not a date range", message=problem
        )
    assert first is not None and last is not None
    rows = _logged(journal_export(published_events(reader.app), first, last))
    return _download(csv_chunks(rows, JOURNAL_COLUMNS), f"journal-{first}-to-{last}.csv")


def _logged(rows: Iterator[dict[str, str]]) -> Iterator[dict[str, str]]:
    """`rows`, an unbalanced export logged (with the entry or currency) before it ends the
    download: the response's status was sent with its first piece."""
    from ledger.app.exports.journal import UnbalancedExport

    try:
        yield from rows
    except UnbalancedExport as error:
        log.error("console.journal_unbalanced", error=str(error))
        raise


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def csv_chunks(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """`rows` as CSV (header first; the `csv` module's default dialect, as `ledger export`
    writes it) in pieces of about CHUNK characters: a download streamed as it is read."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    cells = operator.itemgetter(*columns)
    for row in rows:
        writer.writerow(cells(row))
        if out.tell() > CHUNK:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _download(chunks: Iterator[str], filename: str) -> Response:
    return StreamingResponse(
        chunks,
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
