"""The read API's app factory: routes, errors as problem details, bearer auth, `/health`
and `/metrics` (Prometheus), a latency histogram per route."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger import __version__, ui
from ledger.api import documents as documents_api
from ledger.api import errors, routes
from ledger.api import microsoft as microsoft_api
from ledger.api.data import Reader
from ledger.api.errors import Problem, problem_responses
from ledger.api.models import Health
from ledger.api.shedding import LoadShedMiddleware
from ledger.api.strict import reject_unknown_query
from ledger.app.application import LedgerApplication
from ledger.config import Settings
from ledger.metrics import API_LATENCY, LOG_HEAD, PUBLISH_POSITION
from ledger.store.positions import PositionStore
from ledger.store.readmodels import status
from ledger.store.tokens import TokenFile

log = structlog.get_logger(__name__)

STORE_UP = Gauge(
    "ledger_api_store_up", "1 when the last /metrics scrape could read the ledger's store"
)

DESCRIPTION = """
Read API of the CSP billing ledger (SPEC §8). Every endpoint but `/health` and `/metrics`
needs `Authorization: Bearer <token>` (`ledger tokens create`): `reader` reads customers and
views, `auditor` also event histories, `admin` everything.

Errors are RFC 7807 problem details (`application/problem+json`) with a stable `code` and a
`message` naming the field at fault. Lists return `{"items": [...], "next_cursor": ...}`: pass
`next_cursor` back as `cursor` for the next page (`limit` 1-500, default 100).

`/metrics` is open so that Prometheus can scrape it without a secret; it carries no customer
data. Its gauges of the event log head, publish position and projection positions/lag are read
from the database at each scrape (so they are true across processes); counters such as
`ledger_messages_total` count what this process did itself.
"""


class LatencyMiddleware:
    """Observes every HTTP request's duration in `ledger_api_request_seconds`, labelled with
    the route template (`/customers/{customer_id}`), never the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            API_LATENCY.labels(route).observe(perf_counter() - started)


def create_app(settings: Settings, ledger_app: LedgerApplication | None = None) -> FastAPI:
    """The API over `ledger_app` (default: the one the settings describe)."""
    if ledger_app is None:
        from ledger.bootstrap import build_app

        ledger_app = build_app(settings)
    reader = Reader(settings, ledger_app)
    tokens = TokenFile(settings.api_tokens_file)
    if not tokens.records():
        log.warning(
            "api.no_tokens", tokens_file=str(settings.api_tokens_file), error=tokens.error,
            hint="every endpoint but /health and /metrics answers 401; `ledger tokens create`",
        )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await reader.open_async()
        # What is loaded by now lives as long as the process: out of the cyclic garbage
        # collector's scans, a full collection (every few dozen requests that parse many
        # rows) takes milliseconds instead of ~90 ms (the console's p99 at 10,000 customers).
        gc.collect()
        gc.freeze()
        yield
        await reader.close_async()
        reader.close()

    app = FastAPI(
        title="CSP billing ledger",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.reader = reader
    app.state.tokens = tokens
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(LatencyMiddleware)
    # Added last: the outermost layer, so a shed request costs no routing or middleware.
    app.add_middleware(LoadShedMiddleware, max_in_flight=settings.api_max_in_flight)
    app.include_router(routes.router)
    app.include_router(microsoft_api.router)
    app.include_router(documents_api.router)
    ui.install(app)  # the web console at /ui/ (SPEC §15)
    _operations(app, reader, settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _operations(app: FastAPI, reader: Reader, settings: Settings) -> None:
    @app.get(
        "/health", response_model=Health, responses=problem_responses(503), tags=["operations"]
    )
    def health() -> dict[str, Any]:
        """Open. 200 when the store answers, 503 (`store_unavailable`) when it does not."""
        head = reader.ping()
        return {"status": "ok", "mode": reader.mode, "store": reader.store_kind,
                "event_log_head": head}  # fmt: skip

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text exposition",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["operations"],
    )  # fmt: skip
    def metrics(request: Request) -> Response:
        """Open, for scrapers: ingest, publish, projection and API metrics (Prometheus text)."""
        refresh_store_gauges(reader, settings)
        microsoft_api.refresh_microsoft_gauges(reader)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def refresh_store_gauges(reader: Reader, settings: Settings) -> None:
    """Set the gauges that the database knows across processes: the event log head and,
    with Kafka, how far `ledger publish` and each projection have got."""
    try:
        if reader.stored:
            from consumers.publish import POSITION_NAME

            with reader.rows() as store:
                status(reader.app, store.db)  # head, positions and lag per projection
                position = PositionStore(store.db).get(
                    POSITION_NAME.format(topic=settings.topic_events)
                )
                store.db.commit()
            PUBLISH_POSITION.set(position)
        else:
            LOG_HEAD.set(reader.app.head_position())
    except errors.STORE_UNAVAILABLE as error:
        log.warning("api.metrics_store_unavailable", error=str(error))
        STORE_UP.set(0)
        return
    STORE_UP.set(1)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem.pop("$defs", {}))
        components["Problem"] = problem
        app.openapi_schema = schema
    return app.openapi_schema


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and `ledger serve --workers N`: settings from the
    environment, logging configured in each worker process."""
    from ledger.config import get_settings
    from ledger.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings)
