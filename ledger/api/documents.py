"""SPEC §14 documents over HTTP: an invoice as a PDF, the statement of account as JSON (or a
PDF with `Accept: application/pdf`). Reader role and up."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from ledger.api.errors import ApiError
from ledger.api.routes import CustomerId, ReaderDep, _iso_day, customer_errors, reader_role
from ledger.documents.model import DocumentNotFound
from ledger.documents.profile import partner_profile
from ledger.documents.render import render_pdf
from ledger.documents.service import default_period, find_invoice, find_statement

router = APIRouter()
PDF = "application/pdf"


def _not_found(error: DocumentNotFound) -> ApiError:
    return ApiError(404, "not_found", str(error))


@router.get(
    "/customers/{customer_id}/invoices/{invoice_id}/document", dependencies=reader_role,
    responses={**customer_errors, 200: {"content": {PDF: {}}, "description": "The PDF."}},
    response_class=Response, tags=["documents"],
)  # fmt: skip
def invoice_document(
    customer_id: CustomerId, invoice_id: str, reader: ReaderDep, request: Request
) -> Response:
    """The invoice as the customer reads it (PDF)."""
    profile = partner_profile(request.app.state.settings)
    try:
        doc = find_invoice(reader.app, invoice_id, customer_id)
    except DocumentNotFound as error:
        raise _not_found(error) from None
    headers = {"Content-Disposition": f'inline; filename="{doc.invoice_id}.pdf"'}
    return Response(render_pdf(doc, profile), media_type=PDF, headers=headers)


@router.get(
    "/customers/{customer_id}/statement", dependencies=reader_role,
    responses={**customer_errors, 200: {"content": {PDF: {}, "application/json": {}}}},
    tags=["documents"],
)  # fmt: skip
async def statement(
    customer_id: CustomerId,
    reader: ReaderDep,
    request: Request,
    start: Annotated[
        date | None, Query(alias="from", description="First day (YYYY-MM-DD).")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (YYYY-MM-DD).")] = None,
) -> Response:
    """Statement of account (SPEC §14 JSON; a PDF with `Accept: application/pdf`): opening
    balance, movements with the running balance, closing balance on `to`, aging."""
    for name, value in (("from", request.query_params.get("from")),
                        ("to", request.query_params.get("to"))):  # fmt: skip
        try:
            _iso_day(value)
        except ValueError:
            raise ApiError(422, "invalid_request", f"{name}: must be a date YYYY-MM-DD") from None

    def build() -> Any:
        since, until = default_period(reader.app, customer_id, reader.today())
        first, last = start or since, end or until
        if first > last:
            raise ApiError(422, "invalid_request", f"from: {first} is after to {last}")
        return find_statement(reader.app, customer_id, first, last)

    try:
        doc = await run_in_threadpool(build)
    except DocumentNotFound as error:
        raise _not_found(error) from None
    if PDF in request.headers.get("accept", ""):
        profile = partner_profile(request.app.state.settings)
        pdf = await run_in_threadpool(render_pdf, doc, profile)
        return Response(pdf, media_type=PDF)
    return JSONResponse(doc.to_json())
