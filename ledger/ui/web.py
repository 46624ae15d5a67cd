"""The console's plumbing (SPEC §15): templates, security headers, the session check with its
role (SPEC §8), the CSRF check of POST forms, paging. Pages raise `Denied` with the response
to send instead (the sign-in redirect, a 403 or 503 page); `ledger.ui.install` answers it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ledger.api.data import Reader
from ledger.store.tokens import TokenFile
from ledger.ui.session import COOKIE, ConsoleKeyError, Session, Sessions

HERE = Path(__file__).parent
PAGE_SIZE = 50
SECURITY_HEADERS = {
    # No script anywhere; styles are the console's sheet and the charts' own <style>.
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")
Page = Annotated[int, Query(ge=1, le=1_000_000)]


class Denied(Exception):
    """Raised inside a page: answered with the sign-in redirect or the 403 page."""

    def __init__(self, response: Response) -> None:
        self.response = response


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
        raise _forbidden(request, session, "Not allowed",
                         f"This page needs the {role} role; you are signed in "
                         f"as {session.record.name} ({session.role}).")  # fmt: skip
    return session


def _forbidden(request: Request, session: Session, title: str, message: str) -> Denied:
    """A 403 page for a signed-in user, to raise."""
    return Denied(render(request, "error.html", 403, session, title=title, message=message))


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
        raise _forbidden(request, session, "Form refused",
                         "The form's security token is missing or out of date. "
                         "Reload the page and try again.")  # fmt: skip
    return form


def paged(items: list[Any], page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    number, offset = page_of(len(items), page, size)
    return paged_from(items[offset : offset + size], number, len(items), size)


def page_of(total: int, page: int, size: int = PAGE_SIZE) -> tuple[int, int]:
    """The page shown when `page` is asked of `total` items (the last one past the end) and
    the offset of its first item."""
    number = min(page, max(1, -(-total // size)))
    return number, (number - 1) * size


def paged_from(items: list[Any], page: int, total: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    """A page's items (already cut, e.g. by SQL) with what the pager shows."""
    return {"items": items, "page": page, "pages": max(1, -(-total // size)), "total": total}


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/ui") and not urlsplit(target).netloc:
        return target
    return "/ui/"
