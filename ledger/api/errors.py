"""Every API error is an RFC 7807 problem (`application/problem+json`) that also carries the
ledger's stable `code` and a `message` naming the field at fault."""

from __future__ import annotations

import sqlite3
from http import HTTPStatus
from typing import Any

import psycopg
import psycopg_pool
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.api.pagination import BadCursor
from ledger.domain.errors import LedgerError, UnknownCustomer

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# "The store is not there right now": 503, so clients and load balancers retry elsewhere.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (
    InterfaceError,
    OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    sqlite3.OperationalError,
)


class FieldError(BaseModel):
    field: str = Field(description="The parameter at fault, e.g. `as_of` or `limit`.")
    message: str


class Problem(BaseModel):
    """RFC 7807 problem details, plus the ledger's `code` and `message`."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str
    code: str = Field(
        description="Stable machine-readable error code.", examples=["unknown_customer"]
    )
    message: str = Field(description="What went wrong, naming the field at fault.")
    errors: list[FieldError] | None = None


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.errors = errors


def problem(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:csp-ledger:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": message,
        "code": code,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


DESCRIPTIONS = {
    400: "Bad request (e.g. a cursor this list did not issue): `bad_cursor`.",
    401: "Missing or bad bearer token: `unauthenticated` or `invalid_token`.",
    403: "The token's role may not read this: `forbidden`.",
    404: "No such customer: `unknown_customer`.",
    422: "A parameter is not valid (`invalid_request`); the message names it.",
    503: "The store does not answer right now: `store_unavailable`.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses (the Problem schema is added to the
    components by the app's OpenAPI hook)."""
    content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {s: {"description": DESCRIPTIONS[s], "content": content} for s in statuses}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "header", "body")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem response."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return problem(
            error.status, error.code, error.message, headers=error.headers, errors=error.errors
        )

    @app.exception_handler(BadCursor)
    async def bad_cursor(request: Request, error: BadCursor) -> JSONResponse:
        return problem(400, "bad_cursor", str(error), errors=[{"field": "cursor",
                                                               "message": str(error)}])  # fmt: skip

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, error: LedgerError) -> JSONResponse:
        status = 404 if isinstance(error, UnknownCustomer) else 400
        return problem(status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
                  for e in error.errors()]  # fmt: skip
        message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "invalid_request", message, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return problem(
            error.status_code, code, str(error.detail), headers=getattr(error, "headers", None)
        )

    async def store_unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("api.store_unavailable", path=request.url.path, error=str(error))
        return problem(503, "store_unavailable", "the ledger's store does not answer; retry later",
                       headers={"Retry-After": "1"})  # fmt: skip

    for kind in STORE_UNAVAILABLE:
        app.add_exception_handler(kind, store_unavailable)

    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, ResponseValidationError):
            log.error("api.response_invalid", path=request.url.path, errors=error.errors())
        else:
            log.exception("api.internal_error", path=request.url.path)
        return problem(500, "internal_error", "the server failed; the error is logged")

    app.add_exception_handler(Exception, internal_error)
