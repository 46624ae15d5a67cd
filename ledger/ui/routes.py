"""The web console's pages under `/ui/` (SPEC §15): server-rendered HTML (Jinja2), no
JavaScript needed. Every page needs a session (ledger/ui/web.py); roles are the API's
(SPEC §8): `reader` reads every page but Audit (ledger/ui/audit.py) and the event timeline,
which need `auditor` (or `admin`). Every POST form carries the session's CSRF token."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from eventsourcing.persistence import MapperDeserialisationError
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledger.domain.errors import UnknownCustomer
from ledger.domain.ids import normalize_id
from ledger.ui import charts, data
from ledger.ui.session import Session
from ledger.ui.web import (
    PAGE_SIZE,
    SECURITY_HEADERS,
    Denied,
    Page,
    _reader,
    checked_form,
    paged,
    render,
    signed_in,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


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


def _collections(
    request: Request, session: Session, sort: str, order: str, page: int, preview: Any
) -> Response:
    """The worklist (`GET /delinquency` rows) in the chosen order, and a preview if any."""
    reader = _reader(request)
    return render(
        request,
        "collections.html",
        session=session,
        listing=data.worklist(reader, sort, order == "desc", page),
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
    listing, exact = data.search_customers(reader, q, page)
    if exact is not None:
        return RedirectResponse(f"/ui/customers/{quote(exact)}", 303)
    return render(request, "customers.html", session=session, q=q, listing=listing)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
def customer_page(request: Request, customer_id: str, page: Page = 1) -> Response:
    session = signed_in(request)
    history = session.record.allows("auditor")
    try:
        view = data.customer(_reader(request), normalize_id(customer_id), with_history=history)
    except UnknownCustomer as error:
        return render(
            request, "error.html", 404, session, title="No such customer", message=str(error)
        )
    except MapperDeserialisationError as error:  # an altered row: the API cannot read it either
        return render(
            request, "error.html", 500, session, title="This customer's history cannot be read",
            message=f"{error}. Run `ledger audit verify`: the stored event was altered.",
        )  # fmt: skip
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
    rows = data.source_rows(reader, ("microsoft",))
    day = reader.today()
    remittance = reader.view("remittance", day, False)
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
