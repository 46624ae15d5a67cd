"""Load shedding: past a bound of requests in flight, answer 503 at once instead of queueing.

Beyond the rate a server can answer, an unbounded queue turns every request into a slow one
(issue #22: 20 s p50 at 500 req/s on a slower CPU). A bound on the requests being served by
this process keeps the ones admitted fast, and the others get a cheap `503 overloaded` with
`Retry-After`, so a client or load balancer retries later or elsewhere (RFC 9110 §15.6.4,
§10.2.3). `/health` and `/metrics` are never shed: an orchestrator must not restart a
server, nor a scraper lose its figures, because it is busy.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.api.errors import PROBLEM_MEDIA_TYPE
from ledger.metrics import API_SHED

EXEMPT = frozenset({"/health", "/metrics"})
RETRY_AFTER_SECONDS = 1

_BODY = orjson.dumps(
    {
        "type": "urn:csp-ledger:problem:overloaded",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "the server is at its bound of requests in flight; retry later",
        "code": "overloaded",
        "message": "the server is at its bound of requests in flight; retry later",
    }
)
_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
    ],
}


class LoadShedMiddleware:
    """Admits at most `max_in_flight` HTTP requests at a time (per process); the others get
    503 `overloaded` with `Retry-After: 1`, answered without touching routing or the store.

    The bound is on requests, not connections: idle keep-alive connections cost nothing."""

    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be at least 1, got {max_in_flight}")
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            API_SHED.inc()
            await send(_START)
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1  # one event loop per process: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
