"""The OpenAPI document fuzzed with schemathesis: whatever a client sends, with a valid admin
token, the API answers as it documents and never with a server error."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.unit.test_api import build_api, make_ledger

# Built at import: schemathesis makes one test per operation from the schema it is given.
_TOKENS_DIR = tempfile.TemporaryDirectory(prefix="ledger-fuzz-")
API = build_api(Path(_TOKENS_DIR.name), make_ledger())
schema = schemathesis.openapi.from_asgi("/openapi.json", API.client.app)
AUTH = {"Authorization": f"Bearer {API.tokens['admin']}"}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    # Every check but "schema-valid data is accepted": a cursor is opaque, so a string that
    # fits its schema is still refused (400 bad_cursor) unless the API made it. And not
    # "schema-violating data is rejected" either: its negative cases that only drop the
    # Authorization header are undone by the admin token every call carries, so a valid
    # request would be reported as accepted junk. Junk the API must refuse is tested on its
    # own: unknown query parameters (test_api.py), forged cursors and odd values (below).
    case.call_and_validate(
        headers=AUTH, excluded_checks=[positive_data_acceptance, negative_data_rejection]
    )


# ---- forged cursors ---------------------------------------------------------------------------
# A cursor is opaque, but it is decoded: whatever it holds (numbers beyond 64 bits, negative
# positions, floats, nested values, text that cannot be encoded, other lists' scopes, extra
# members, not JSON, not base64), every paginated endpoint answers 400 bad_cursor or a page,
# never a server error, on the in-memory store and on SQLite (where an int beyond 64 bits
# once reached the database: 500).

_SQLITE_DIR = tempfile.TemporaryDirectory(prefix="ledger-fuzz-sqlite-")
SQLITE_URL = f"sqlite:///{Path(_SQLITE_DIR.name) / 'ledger.db'}"
SQLITE_API = build_api(Path(_SQLITE_DIR.name), make_ledger(SQLITE_URL), SQLITE_URL)
LISTS = {
    "/customers/contoso/events": "events:contoso",
    "/customers/contoso/invoices": "invoices:contoso",
    "/delinquency": "delinquency",
    "/remittance": "remittance",
    "/support/tickets": "support",
    "/trial-balance": "trial-balance",
}
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False)
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**63, 2**63 - 1, -(2**63), 2**64, -1, 0]) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@st.composite
def cursors(draw: st.DrawFn, scope: str) -> str:
    kind = draw(st.sampled_from(["key", "document", "bytes", "text"]))
    if kind == "key":  # the right scope, a forged key
        key = draw(st.lists(json_values, max_size=3))
        document: Any = {"s": scope, "k": key}
        if draw(st.booleans()):
            document["x"] = draw(json_values)
    elif kind == "document":
        document = draw(json_values)
    elif kind == "bytes":
        return b64(draw(st.binary(max_size=60)))
    else:
        return draw(st.text(max_size=40))
    return b64(json.dumps(document).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("path", sorted(LISTS))
@pytest.mark.parametrize("store", ["memory", "sqlite"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_forged_cursors_are_a_bad_request_never_a_server_error(
    path: str, store: str, data: st.DataObject
) -> None:
    api = API if store == "memory" else SQLITE_API
    cursor = data.draw(cursors(LISTS[path]), label="cursor")
    response = api.get(path, cursor=cursor)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 400:
        assert response.json()["code"] == "bad_cursor"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize(
    "key", [[2**63], [2**63 - 1 + 1], [-1], [1.0], [True], ["1"], [None], [1, 2], []]
)
def test_a_forged_event_position_is_a_bad_cursor(store: str, key: list[Any]) -> None:
    api = API if store == "memory" else SQLITE_API
    cursor = b64(json.dumps({"s": "events:contoso", "k": key}).encode())
    response = api.get("/customers/contoso/events", cursor=cursor)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_cursor"


def test_the_cursors_the_api_makes_still_work() -> None:
    for api in (API, SQLITE_API):
        for path in LISTS:
            items, pages = api.all_pages(path, 1)
            assert pages == max(len(items), 1)


# ---- other edges: dates at the ends of the calendar, odd path ids ---------------------------

ENDPOINTS = ["/customers/contoso/balance", *sorted(LISTS), "/customers/contoso"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize("as_of", ["0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31"])
def test_as_of_at_the_ends_of_the_calendar_is_never_a_server_error(store: str, as_of: str) -> None:
    api = API if store == "memory" else SQLITE_API
    for path in ENDPOINTS:
        params = {} if path in ("/customers/contoso", "/customers/contoso/events") else {
            "as_of": as_of}  # fmt: skip
        response = api.get(path, **params)
        assert response.status_code in (200, 404), (path, response.text)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize(
    "customer_id",
    ["%00", "a%2Fb", "..", "%E2%80%AE", "%F0%9F%98%80", "a" * 65, "x%0A", "%C0%AF", "%FF",
     "74221236-D09C-4870-AC1D-33E155E9AEBE"],
)  # fmt: skip
def test_odd_customer_ids_in_paths_are_never_a_server_error(store: str, customer_id: str) -> None:
    api = API if store == "memory" else SQLITE_API
    for suffix in ("", "/balance", "/events", "/invoices"):
        response = api.get(f"/customers/{customer_id}{suffix}")
        assert response.status_code in (404, 422), (customer_id, suffix, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
