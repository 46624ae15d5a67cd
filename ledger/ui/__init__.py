"""The web console (SPEC §15): `/ui/` pages over the API's own data functions."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from ledger.ui import audit, routes, signin
from ledger.ui.web import Denied


def install(app: FastAPI) -> None:
    """Serve the console at `/ui/` in `app` (the read API's FastAPI app)."""

    async def denied(request: Request, error: Exception) -> Response:
        assert isinstance(error, Denied)
        return error.response

    for module in (signin, routes, audit):
        app.include_router(module.router)
    app.add_exception_handler(Denied, denied)
