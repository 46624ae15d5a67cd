"""The web console's pages under `/ui/` (SPEC §15): server-rendered HTML (Jinja2), no
JavaScript needed. Every page but sign-in needs a session (ledger/ui/session.py); roles are
the API's (SPEC §8): `reader` reads every page but Audit and the event timeline, which need
`auditor` (or `admin`). Every POST form carries the session's CSRF token."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from ledger.api.data import Reader
from ledger.domain.errors import UnknownCustomer
from ledger.domain.ids import normalize_id
from ledger.store.tokens import TokenFile
from ledger.ui import charts, data
from ledger.ui.session import COOKIE, ConsoleKeyError, Session, Sessions

HERE = Path(__file__).parent
PAGE_SIZE = 50
SIGNIN_COOKIE = "ledger_console_signin"  # the sign-in form's CSRF secret, before a session
SECURITY_HEADERS = {
    # No script anywhere; styles are the console's sheet and the charts' own <style>.
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
Page = Annotated[int, Query(ge=1, le=1_000_000)]


class Denied(Exception):
    """Raised inside a page: answered with the sign-in redirect or the 403 page."""

    def __init__(self, response: Response) -> None:
        self.response = response


# ---- plumbing -------------------------------------------------------------------------------


def _sessions(request: Request) -> Sessions:
    state = request.app.state
    sessions: Sessions | None = getattr(state, "console_sessions", None)
    if sessions is None:
        tokens: TokenFile = state.tokens
        sessions = state.console_sessions = Sessions(tokens)
    return sessions


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


def render(
    request: Request, name: str, code: int = 200, session: Session | None = None, **context: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, name, {"session": session, "nav": _nav(request), **context}, status_code=code
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _nav(request: Request) -> str:
    path = request.url.path
    for prefix, name in (
        ("/ui/collections", "collections"),
        ("/ui/customers", "customers"),
        ("/ui/microsoft", "microsoft"),
        ("/ui/support", "support"),
        ("/ui/audit", "audit"),
    ):
        if path.startswith(prefix):
            return name
    return "overview"


def signed_in(request: Request, role: str = "reader") -> Session:
    """The request's session, or Denied: no (or a forged, expired, revoked) session → the
    sign-in page (303, back here afterwards); a role too low → the 403 page."""
    try:
        session = _sessions(request).read(request.cookies.get(COOKIE))
    except ConsoleKeyError as error:
        raise Denied(_unavailable(request, str(error))) from None
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"/ui/signin?next={quote(target, safe='')}", 303)
        response.delete_cookie(COOKIE, path="/ui")
        raise Denied(response)
    if not session.record.allows(role):
        raise Denied(
            render(
                request,
                "error.html",
                403,
                session,
                title="Not allowed",
                message=f"This page needs the {role} role; you are signed in "
                f"as {session.record.name} ({session.role}).",
            )
        )
    return session


def _unavailable(request: Request, why: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        503,
        title="Console unavailable",
        message=f"The console cannot sign anyone in: {why}",
    )


async def checked_form(request: Request, session: Session) -> dict[str, str]:
    """The POSTed form, after its CSRF token is checked against the session's (403 if not)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not secrets.compare_digest(form.get("csrf", ""), session.csrf):
        raise Denied(
            render(
                request,
                "error.html",
                403,
                session,
                title="Form refused",
                message="The form's security token is missing or out of date. "
                "Reload the page and try again.",
            )
        )
    return form


def paged(items: list[Any], page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    pages = max(1, -(-len(items) // size))
    page = min(page, pages)
    return {
        "items": items[(page - 1) * size : page * size],
        "page": page,
        "pages": pages,
        "total": len(items),
    }


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/ui") and not urlsplit(target).netloc:
        return target
    return "/ui/"


# ---- sign-in and out ------------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form (an API token from `ledger tokens create`)."""
    return _signin_form(request, _safe_next(next))


def _signin_form(request: Request, target: str, error: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(
        request, "signin.html", 401 if error else 200, csrf=nonce, next=target, error=error
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=3600,
        path="/ui/signin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    target = _safe_next(form.get("next"))
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
        return render(
            request,
            "error.html",
            403,
            title="Form refused",
            message="The sign-in form's security token is missing or out of date. "
            "Open the sign-in page again.",
        )
    try:
        made = _sessions(request).sign_in(form.get("token", ""))
    except ConsoleKeyError as error:
        return _unavailable(request, str(error))
    if made is None:
        return _signin_form(request, target, "That token is unknown or revoked.")
    _, cookie = made
    response = RedirectResponse(target, 303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=_sessions(request).max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/ui/signin")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session = signed_in(request)
    await checked_form(request, session)
    response = RedirectResponse("/ui/signin", 303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/static/console.css")
def stylesheet() -> Response:
    css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


# ---- pages ----------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    session = signed_in(request)
    view = data.overview(_reader(request))
    aging_charts = [
        (
            currency,
            charts.bar_chart(
                f"Receivables aging ({currency})",
                tuple(data.AGING_LABELS.values()),
                ((currency, tuple(buckets[b] for b in data.AGING_LABELS)),),
            ),
        )
        for currency, buckets in view.aging.items()
    ]
    month_charts = []
    for currency in sorted({m["currency"] for m in view.months}):
        months = [m for m in view.months if m["currency"] == currency]
        month_charts.append(
            (
                currency,
                charts.bar_chart(
                    f"Invoiced, cash collected and overdue by billing month ({currency})",
                    tuple(m["period"] for m in months),
                    tuple(
                        (label, tuple(m[key] for m in months))
                        for key, label in (
                            ("invoiced", "Invoiced"),
                            ("collected", "Cash collected"),
                            ("overdue", "Overdue"),
                        )
                    ),
                ),
            )
        )
    return render(
        request,
        "overview.html",
        session=session,
        view=view,
        aging_charts=aging_charts,
        month_charts=month_charts,
        labels=data.AGING_LABELS,
    )


SortKey = Literal["days", "amount", "name"]


@router.get("/collections", response_class=HTMLResponse)
def collections_page(
    request: Request,
    sort: SortKey = "days",
    order: Literal["asc", "desc"] = "desc",
    page: Page = 1,
) -> Response:
    session = signed_in(request)
    return _collections(request, session, sort, order, page, None)


WORKLIST_ORDER = {
    "days": lambda r: (r["days_past_due"], r["customer_id"]),
    "amount": lambda r: (Decimal(r["overdue"]), r["customer_id"]),
    "name": lambda r: ((r["name"] or "").lower(), r["customer_id"]),
}


def _collections(
    request: Request, session: Session, sort: str, order: str, page: int, preview: Any
) -> Response:
    """The worklist (`GET /delinquency` rows) in the chosen order, and a preview if any."""
    reader = _reader(request)
    rows = reader.view("delinquency", reader.today(), False)
    rows.sort(key=WORKLIST_ORDER[sort], reverse=order == "desc")
    return render(
        request,
        "collections.html",
        session=session,
        listing=paged(rows, page),
        sort=sort,
        order=order,
        day=reader.today(),
        preview=preview,
    )


@router.post("/collections/preview", response_class=HTMLResponse)
async def collections_preview(request: Request) -> Response:
    """What `ledger collections run --dry-run --as-of DATE` would fire (nothing is saved)."""
    from ledger.app.collections import CollectionsIncomplete
    from ledger.app.microsoft import collections_and_microsoft

    session = signed_in(request)
    form = await checked_form(request, session)
    reader = _reader(request)
    try:
        day = date.fromisoformat(form.get("as_of", ""))
    except ValueError:
        return render(
            request,
            "error.html",
            422,
            session,
            title="Not a date",
            message="as_of: give a date as YYYY-MM-DD.",
        )
    skipped: list[str] = []
    try:
        fired = await run_in_threadpool(collections_and_microsoft, reader.app, day, dry_run=True)
    except CollectionsIncomplete as error:
        fired, skipped = error.fired, [e.message for e in error.skipped]
    preview = {"as_of": day, "fired": fired, "skipped": skipped}
    return _collections(request, session, "days", "desc", 1, preview)


@router.get("/customers", response_class=HTMLResponse)
def customers_page(
    request: Request, q: Annotated[str, Query(max_length=200)] = "", page: Page = 1
) -> Response:
    """Customers whose id or name contains `q`; an exact id goes straight to its page."""
    session = signed_in(request)
    reader = _reader(request)
    found = data.search_customers(reader, q)
    exact = [r for r in found if r["customer_id"] == normalize_id(q.strip())] if q else []
    if len(exact) == 1:
        return RedirectResponse(f"/ui/customers/{quote(exact[0]['customer_id'])}", 303)
    return render(request, "customers.html", session=session, q=q, listing=paged(found, page))


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer_page(request: Request, customer_id: str, page: Page = 1) -> Response:
    session = signed_in(request)
    history = session.record.allows("auditor")
    try:
        view = data.customer(_reader(request), normalize_id(customer_id), history=history)
    except UnknownCustomer as error:
        return render(
            request, "error.html", 404, session, title="No such customer", message=str(error)
        )
    return render(
        request,
        "customer.html",
        session=session,
        view=view,
        history=history,
        events=paged(list(reversed(view.events)), page),
        labels=data.AGING_LABELS,
    )


def _document(request: Request, session: Session, find: Any) -> Any:
    from ledger.documents.model import DocumentNotFound

    try:
        return find()
    except DocumentNotFound as error:
        raise Denied(
            render(
                request, "error.html", 404, session, title="No such document", message=str(error)
            )
        ) from None


@router.get("/customers/{customer_id}/invoices/{invoice_id}", response_class=HTMLResponse)
def invoice_document(request: Request, customer_id: str, invoice_id: str) -> Response:
    """The invoice as the customer reads it (HTML; `.pdf` for the PDF)."""
    from ledger.documents.profile import partner_profile
    from ledger.documents.render import render_html, render_pdf
    from ledger.documents.service import find_invoice

    session = signed_in(request)
    app, settings = _reader(request).app, request.app.state.settings
    pdf = invoice_id.endswith(".pdf")
    number = invoice_id.removesuffix(".pdf")
    doc = _document(request, session, lambda: find_invoice(app, number, customer_id))
    profile = partner_profile(settings)
    if pdf:
        return Response(
            render_pdf(doc, profile),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{number}.pdf"', **SECURITY_HEADERS},
        )
    html = render_html(doc, profile, settings.templates_dir)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/customers/{customer_id}/statement", response_class=HTMLResponse)
def statement_document(request: Request, customer_id: str) -> Response:
    """The statement of account from registration to today (HTML)."""
    from ledger.documents.profile import partner_profile
    from ledger.documents.render import render_html
    from ledger.documents.service import default_period, find_statement

    session = signed_in(request)
    reader, settings = _reader(request), request.app.state.settings

    def find() -> Any:
        start, end = default_period(reader.app, customer_id, reader.today())
        return find_statement(reader.app, normalize_id(customer_id), start, end)

    doc = _document(request, session, find)
    html = render_html(doc, partner_profile(settings), settings.templates_dir)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/microsoft", response_class=HTMLResponse)
def microsoft_page(request: Request, page: Page = 1) -> Response:
    session = signed_in(request)
    reader = _reader(request)
    rows = data.source_rows(reader, ("microsoft", "remittance"))
    day = reader.today()
    remittance = data.view(reader, rows, "remittance", day)
    remittance.sort(key=lambda r: (r["billing_period"], r["currency"]), reverse=True)
    listing = paged(remittance, page)
    return render(
        request,
        "microsoft.html",
        session=session,
        positions=data.view(reader, rows, "microsoft", day),
        remittance=listing,
        reconciliations=data.reconciliations(reader, listing["items"]),
    )


@router.get("/support", response_class=HTMLResponse)
def support_page(
    request: Request,
    status: Literal["open", "escalated", "resolved"] | None = None,
    page: Page = 1,
) -> Response:
    session = signed_in(request)
    reader = _reader(request)
    tickets = reader.view("support", reader.today(), False)
    tickets.sort(key=lambda t: (t["customer_id"], t["ticket_id"]))  # the API's order
    counts = {
        s: sum(1 for t in tickets if t["status"] == s) for s in ("open", "escalated", "resolved")
    }
    shown = [t for t in tickets if status is None or t["status"] == status]
    escalations = [
        dict(e, ticket_id=t["ticket_id"], customer_id=t["customer_id"])
        for t in tickets
        for e in t["escalations"]
    ]
    escalations.sort(key=lambda e: e["at"], reverse=True)
    return render(
        request,
        "support.html",
        session=session,
        status=status,
        counts=counts,
        listing=paged(shown, page),
        escalations=escalations[:PAGE_SIZE],
    )


# ---- audit (auditor and admin) --------------------------------------------------------------


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
