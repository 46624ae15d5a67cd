"""Signing in to the console with an API token, and out (SPEC §15). The sign-in form's CSRF
secret lives in a short-lived cookie of its own, since there is no session yet."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledger.ui.session import COOKIE, ConsoleKeyError
from ledger.ui.web import (
    HERE,
    _safe_next,
    _sessions,
    _unavailable,
    checked_form,
    render,
    signed_in,
)

SIGNIN_COOKIE = "ledger_console_signin"  # the sign-in form's CSRF secret, before a session
router = APIRouter(prefix="/ui", include_in_schema=False)


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
