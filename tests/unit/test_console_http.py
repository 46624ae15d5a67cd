"""The web console's sign-in, session and CSRF rules over HTTP (SPEC §15, §8 roles): no
session → the sign-in page; a forged, expired or revoked session is no session; a form without
its CSRF token is refused (403); a reader cannot reach the auditor's pages."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from itsdangerous import URLSafeTimedSerializer

from ledger.app.exports.journal import JOURNAL_COLUMNS, UnbalancedExport, journal_export
from ledger.app.views import published_events
from ledger.domain.account import account_id
from ledger.domain.postings import Posting
from ledger.store import tokens
from ledger.ui.session import COOKIE, SESSION_SECONDS, key_path, load_or_create_key
from projections import posting_dates
from tests.unit.test_api import Api, build_api, make_ledger

PAGES = [
    "/ui/",
    "/ui/collections",
    "/ui/customers?q=late",
    "/ui/customers/contoso",
    "/ui/customers/contoso/statement",
    "/ui/customers/contoso/invoices/INV-contoso-2025-01",
    "/ui/microsoft",
    "/ui/support",
    "/ui/audit",
    "/ui/audit/trial-balance.csv",
    "/ui/audit/journal.csv?from=2025-01-01&to=2025-03-20",
]
AUDITOR_ONLY = [
    "/ui/audit",
    "/ui/audit/trial-balance.csv",
    "/ui/audit/journal.csv?from=2025-01-01&to=2025-03-20",
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Api:
    return build_api(tmp_path_factory.mktemp("console"), make_ledger())


def client(api: Api) -> TestClient:
    """A fresh browser: the app's client without cookies."""
    return TestClient(api.client.app, follow_redirects=False)


def csrf_of(response: Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


def sign_in(api: Api, role: str, browser: TestClient | None = None) -> TestClient:
    browser = browser or client(api)
    form = browser.get("/ui/signin")
    signed = browser.post(
        "/ui/signin", data={"csrf": csrf_of(form), "token": api.tokens[role], "next": "/ui/"}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/"
    return browser


@pytest.mark.parametrize("page", PAGES)
def test_without_a_session_every_page_goes_to_sign_in(api: Api, page: str) -> None:
    response = client(api).get(page)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/signin?next=%2Fui%2F")


def test_the_session_cookie_is_httponly_samesite_strict_and_expires(api: Api) -> None:
    browser = client(api)
    form = browser.get("/ui/signin")
    signed = browser.post("/ui/signin", data={"csrf": csrf_of(form), "token": api.tokens["reader"]})
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/ui" in cookie.lower()
    assert f"max-age={SESSION_SECONDS}" in cookie.lower()
    assert api.tokens["reader"] not in cookie  # the token itself never goes into the cookie
    assert browser.get("/ui/").status_code == 200


def test_a_wrong_token_is_refused_and_nothing_is_signed_in(api: Api) -> None:
    browser = client(api)
    form = browser.get("/ui/signin")
    refused = browser.post("/ui/signin", data={"csrf": csrf_of(form), "token": "lgr_nope"})
    assert refused.status_code == 401 and "unknown or revoked" in refused.text
    assert COOKIE not in browser.cookies
    assert browser.get("/ui/").status_code == 303


def test_sign_in_without_its_csrf_token_is_refused(api: Api) -> None:
    browser = client(api)
    browser.get("/ui/signin")  # the form's secret is in a cookie; the form field is missing
    refused = browser.post("/ui/signin", data={"token": api.tokens["admin"]})
    assert refused.status_code == 403 and COOKIE not in browser.cookies
    other = client(api)  # a token from another browser's form does not match this one
    stolen = csrf_of(browser.get("/ui/signin"))
    other.get("/ui/signin")
    assert (
        other.post("/ui/signin", data={"csrf": stolen, "token": api.tokens["admin"]}).status_code
        == 403
    )


def test_a_forged_cookie_is_no_session(api: Api, tmp_path: Path) -> None:
    browser = sign_in(api, "admin")
    genuine = browser.cookies[COOKIE]
    payload, _, signature = genuine.rpartition(".")
    forgeries = [
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),  # signature altered
        payload.replace(payload[:4], "eyJu") + "x." + signature,  # payload altered
        URLSafeTimedSerializer(b"k" * 32, salt="ledger-console-session").dumps(
            {"n": "admin-1", "d": "0" * 16, "c": "x"}
        ),  # signed with another key
        "not-a-cookie",
    ]
    for forged in forgeries:
        fresh = client(api)
        fresh.cookies.set(COOKIE, forged, path="/ui")
        assert fresh.get("/ui/").status_code == 303, forged


def test_an_expired_session_is_no_session(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = client(api)
    form = browser.get("/ui/signin")
    signed_at = time.time() - SESSION_SECONDS - 60  # signed a working day and a minute ago
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: signed_at)
    browser.post("/ui/signin", data={"csrf": csrf_of(form), "token": api.tokens["admin"]})
    monkeypatch.undo()
    assert COOKIE in browser.cookies
    response = browser.get("/ui/")
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/signin")


def test_a_revoked_token_ends_its_sessions(tmp_path: Path) -> None:
    api = build_api(tmp_path, make_ledger())
    browser = sign_in(api, "reader")
    assert browser.get("/ui/").status_code == 200
    tokens.revoke(api.tokens_file, "reader-1")
    assert browser.get("/ui/").status_code == 303
    # Re-created under the same name: another token, so the old session stays ended.
    tokens.create(api.tokens_file, "reader-1", "reader")
    assert browser.get("/ui/").status_code == 303


@pytest.mark.parametrize("form", ["/ui/signout", "/ui/collections/preview", "/ui/audit/verify"])
def test_a_form_without_its_csrf_token_is_refused(api: Api, form: str) -> None:
    browser = sign_in(api, "admin")
    assert browser.post(form, data={"as_of": "2025-04-01"}).status_code == 403
    assert browser.post(form, data={"as_of": "2025-04-01", "csrf": "guess"}).status_code == 403
    assert browser.get("/ui/").status_code == 200  # still signed in: nothing was done


def test_sign_out_with_the_token_ends_the_session(api: Api) -> None:
    browser = sign_in(api, "admin")
    out = browser.post("/ui/signout", data={"csrf": csrf_of(browser.get("/ui/"))})
    assert out.status_code == 303 and out.headers["location"] == "/ui/signin"
    assert browser.get("/ui/").status_code == 303


@pytest.mark.parametrize("page", AUDITOR_ONLY)
def test_a_reader_cannot_reach_the_audit_pages(api: Api, page: str) -> None:
    reader = sign_in(api, "reader")
    refused = reader.get(page)
    assert refused.status_code == 403 and "needs the auditor role" in refused.text
    assert sign_in(api, "auditor").get(page).status_code == 200
    assert (
        reader.post("/ui/audit/verify", data={"csrf": csrf_of(reader.get("/ui/"))}).status_code
        == 403
    )


def test_a_reader_sees_no_event_timeline(api: Api) -> None:
    page = sign_in(api, "reader").get("/ui/customers/contoso")
    assert page.status_code == 200 and 'id="events"' not in page.text
    assert 'id="events"' in sign_in(api, "auditor").get("/ui/customers/contoso").text


def test_sign_in_never_redirects_off_the_console(api: Api) -> None:
    browser = client(api)
    form = browser.get("/ui/signin?next=https://evil.example/")
    assert 'value="/ui/"' in form.text
    signed = browser.post(
        "/ui/signin",
        data={"csrf": csrf_of(form), "next": "//evil.example/", "token": api.tokens["admin"]},
    )
    assert signed.headers["location"] == "/ui/"


def test_pages_forbid_scripts_and_framing(api: Api) -> None:
    page = sign_in(api, "admin").get("/ui/")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "<script" not in page.text


def test_every_page_answers_for_an_admin(api: Api) -> None:
    browser = sign_in(api, "admin")
    for page in PAGES:
        assert browser.get(page).status_code == 200, page
    assert browser.get("/ui/customers/nobody").status_code == 404


def test_the_journal_download_is_the_journal_exports_rows(api: Api) -> None:
    """The Audit page's journal is `journal_export`'s rows for the dates asked (as `ledger
    export journal` writes them), balanced per currency."""
    ledger = api.client.app.state.reader.app
    browser = sign_in(api, "auditor")
    got = browser.get("/ui/audit/journal.csv", params={"from": "2025-02-01", "to": "2025-02-28"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert 'filename="journal-2025-02-01-to-2025-02-28.csv"' in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert list(rows[0]) == list(JOURNAL_COLUMNS)
    expected = journal_export(published_events(ledger), date(2025, 2, 1), date(2025, 2, 28))
    assert rows == list(expected)
    assert {r["posting_date"][:7] for r in rows} == {"2025-02"}
    for currency in {r["currency"] for r in rows}:
        mine = [r for r in rows if r["currency"] == currency]
        assert sum(Decimal(r["debit"]) for r in mine) == sum(Decimal(r["credit"]) for r in mine)
    everything = browser.get(
        "/ui/audit/journal.csv", params={"from": "2025-01-01", "to": "2025-12-31"}
    )
    assert len(everything.text.splitlines()) > len(got.text.splitlines())


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        ("", "2025-02-28", "from: give the first posting date"),
        ("2025-02-01", "28/02/2025", "to: give the last posting date"),
        ("2025-03-01", "2025-02-28", "from: 2025-03-01 is after to 2025-02-28"),
    ],
)
def test_a_journal_download_without_a_date_range_names_the_field(
    api: Api, start: str, end: str, named: str
) -> None:
    got = sign_in(api, "auditor").get("/ui/audit/journal.csv", params={"from": start, "to": end})
    assert got.status_code == 422 and named in got.text


def test_an_unbalanced_journal_stops_the_download(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A posting rule gone wrong (a credit dropped): the export raises before the entry is
    written, so the download never completes as if it were whole."""
    real = posting_dates.postings_for

    def wrong(*args: Any) -> list[Posting]:
        return [p for p in real(*args) if p.debit]

    monkeypatch.setattr(posting_dates, "postings_for", wrong)
    browser = sign_in(api, "auditor")
    # The status went out with the first piece: the app fails the response (a server
    # closes the connection mid-transfer) instead of ending it as if it were whole.
    with pytest.raises(RuntimeError, match="response already started") as failed:
        browser.get("/ui/audit/journal.csv", params={"from": "2025-01-01", "to": "2025-12-31"})
    cause = failed.value.__context__
    assert isinstance(cause, UnbalancedExport) and "is off by" in str(cause)


def test_the_signing_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = key_path(tmp_path / "tokens.toml")
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert path.stat().st_mode & 0o777 == 0o600


def test_without_a_usable_signing_key_nobody_signs_in(tmp_path: Path) -> None:
    api = build_api(tmp_path, make_ledger())
    key_path(api.tokens_file).mkdir()  # neither readable as a key nor replaceable
    browser = client(api)
    form = browser.get("/ui/signin")
    refused = browser.post("/ui/signin", data={"csrf": csrf_of(form), "token": api.tokens["admin"]})
    assert refused.status_code == 503 and "cannot sign anyone in" in refused.text
    assert COOKIE not in browser.cookies
    browser.cookies.set(COOKIE, "a-session-from-before", path="/ui")
    assert browser.get("/ui/").status_code == 503  # not even a cookie can be checked
    assert api.get("/customers/contoso").status_code == 200  # the JSON API is unaffected


def alter_event(store: Path, customer_id: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite the stored bytes of the customer's second event (a charge) in place."""
    with closing(sqlite3.connect(store)) as conn, conn:
        (state,) = conn.execute(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (account_id(customer_id).hex,),
        ).fetchone()
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 2",
            (change(bytes(state)), account_id(customer_id).hex),
        )


def test_the_customer_page_names_a_broken_chain(tmp_path: Path) -> None:
    """An event whose amount was altered in the store is named on the customer's timeline."""
    store = tmp_path / "ledger.db"
    api = build_api(tmp_path, make_ledger(f"sqlite:///{store}"), f"sqlite:///{store}")
    alter_event(store, "late-1", lambda state: state.replace(b'"20.00"', b'"2.00"'))
    page = sign_in(api, "auditor").get("/ui/customers/late-1")
    assert page.status_code == 200
    status = re.search(r'id="chain-status"[^>]*>(.*?)</p>', page.text, re.DOTALL)
    assert status is not None
    assert "BROKEN at position 2: content does not match its hash" in status.group(1)


def test_an_undecodable_event_is_named_not_a_traceback(tmp_path: Path) -> None:
    store = tmp_path / "ledger.db"
    api = build_api(tmp_path, make_ledger(f"sqlite:///{store}"), f"sqlite:///{store}")
    alter_event(store, "late-1", lambda state: state[: len(state) // 2])
    page = sign_in(api, "auditor").get("/ui/customers/late-1")
    assert page.status_code == 500 and "history cannot be read" in page.text
    assert "originator_version 2" in page.text and "ledger audit verify" in page.text
