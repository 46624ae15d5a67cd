"""The API's load shedding (ledger/api/shedding.py): past the in-flight bound, an immediate
503 `overloaded` with Retry-After; /health and /metrics always pass; the bound frees up."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ledger.api.shedding import LoadShedMiddleware


class Gate:
    """An ASGI app that answers 200 once its gate opens (a request held in flight)."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        await self.open.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET"}, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_over_the_bound_is_503_overloaded_at_once_and_the_bound_frees_up() -> None:
    async def scenario() -> None:
        inner = Gate()
        app = LoadShedMiddleware(inner, max_in_flight=2)
        held = [asyncio.create_task(call(app, f"/customers/c{i}/balance")) for i in range(2)]
        await asyncio.sleep(0)
        assert inner.entered == 2
        # The third is answered while the two are still held: no queue.
        status, headers, body = await asyncio.wait_for(call(app, "/customers/c3/balance"), 1)
        assert status == 503
        assert headers[b"retry-after"] == b"1"
        assert headers[b"content-type"] == b"application/problem+json"
        problem = orjson.loads(body)
        assert problem["code"] == "overloaded" and problem["status"] == 503
        assert int(headers[b"content-length"]) == len(body)
        assert inner.entered == 2  # the shed request never reached the app
        # Health and metrics pass whatever the load.
        health = asyncio.create_task(call(app, "/health"))
        await asyncio.sleep(0)
        assert inner.entered == 3
        inner.open.set()
        assert [(await t)[0] for t in [*held, health]] == [200, 200, 200]
        assert app.in_flight == 0
        assert (await call(app, "/customers/c4/balance"))[0] == 200

    asyncio.run(scenario())


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        LoadShedMiddleware(Gate(), max_in_flight=0)
