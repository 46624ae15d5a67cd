"""The read API on an embedded (in-memory) ledger: every endpoint found / not found, paginated
across pages, as_of, and every authentication and authorisation case."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from ledger.api import create_app
from ledger.app.application import LedgerApplication
from ledger.config import Settings
from ledger.store import tokens
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    build,
    charge,
    customer_registered,
    msgs,
    payment,
    support_escalated,
    support_ticket_opened,
    support_ticket_resolved,
)

TODAY = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
PROTECTED = [
    "/customers/contoso",
    "/customers/contoso/balance",
    "/customers/contoso/invoices",
    "/customers/contoso/events",
    "/delinquency",
    "/remittance",
    "/microsoft",
    "/support/tickets",
    "/trial-balance",
    "/margin",
    "/tax",
]
# Customers whose January invoice (dated 2025-02-01) is due after these payment terms.
LATE = {"late-1": 5, "late-2": 10, "late-3": 15, "late-4": 20}


def at(day: str) -> str:
    return f"{day}T10:00:00Z"


def populate(app: LedgerApplication) -> None:
    """Two months of a small partner: part-paid, paid, four late payers, support tickets."""
    first = [
        customer_registered("contoso", occurred_at=at("2025-01-05")),
        charge("contoso", "CH-1", "100.00", occurred_at=at("2025-01-10")),
        charge("contoso", "CH-2", "40.00", billing_period="2025-02", occurred_at=at("2025-02-10")),
        customer_registered("fabrikam", occurred_at=at("2025-01-06")),
        charge("fabrikam", "CH-1", "50.00", occurred_at=at("2025-01-11")),
        support_ticket_opened("contoso", "T-1", occurred_at=at("2025-02-03")),
        support_escalated("contoso", "T-1", occurred_at=at("2025-02-04")),
        support_ticket_opened("fabrikam", "T-9", occurred_at=at("2025-02-05")),
        support_ticket_resolved("fabrikam", "T-9", occurred_at=at("2025-02-06")),
    ]
    for customer, terms in LATE.items():
        first.append(customer_registered(customer, payment_terms_days=terms,
                                         occurred_at=at("2025-01-07")))  # fmt: skip
        first.append(charge(customer, "CH-1", "20.00", occurred_at=at("2025-01-12")))
    assert all(o.status == "applied" for o in app.handle_batch(msgs(first)).outcomes)
    app.run_invoices("2025-01", date(2025, 2, 1))
    paid = [
        payment("contoso", "PAY-1", "30.00", occurred_at=at("2025-02-10")),
        payment("fabrikam", "PAY-1", "50.00", occurred_at=at("2025-02-15")),
    ]
    assert all(o.status == "applied" for o in app.handle_batch(msgs(paid)).outcomes)
    app.run_invoices("2025-02", date(2025, 3, 1))
    app.run_collections(date(2025, 3, 20))


def make_ledger(database_url: str = "memory://") -> LedgerApplication:
    app = LedgerApplication(eventsourcing_env(database_url), clock=lambda: TODAY)
    populate(app)
    return app


def make_tokens(path: Path) -> dict[str, str]:
    return {role: tokens.create(path, f"{role}-1", role) for role in tokens.ROLES}


class Api:
    """A test client with a token per role."""

    def __init__(self, client: TestClient, tokens_by_role: dict[str, str], path: Path) -> None:
        self.client = client
        self.tokens = tokens_by_role
        self.tokens_file = path

    def get(self, url: str, role: str | None = "admin", **params: Any) -> Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.client.get(url, params=params, headers=headers)

    def ok(self, url: str, role: str = "admin", **params: Any) -> Any:
        response = self.get(url, role, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def all_pages(self, url: str, limit: int, **params: Any) -> tuple[list[Any], int]:
        items: list[Any] = []
        pages, cursor = 0, None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            body = self.ok(url, limit=limit, **params, **extra)
            assert len(body["items"]) <= limit
            items += body["items"]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                return items, pages


def build_api(
    tmp: Path, ledger: LedgerApplication, database_url: str = "memory://", **settings: Any
) -> Api:
    path = tmp / "tokens.toml"
    by_role = make_tokens(path)
    config = Settings(database_url=database_url, api_tokens_file=path, **settings)
    return Api(TestClient(create_app(config, ledger)), by_role, path)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield build_api(tmp_path_factory.mktemp("api"), make_ledger())


def assert_problem(response: Response, status: int, code: str, names: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["message"] and body["detail"] == body["message"] and body["title"]
    assert names in body["message"]
    return body


# ---- health, metrics, OpenAPI -------------------------------------------------------------


def test_health_is_open_and_reports_the_store(api: Api) -> None:
    body = api.ok("/health", role=None)  # type: ignore[arg-type]
    assert body["status"] == "ok" and body["mode"] == "embedded" and body["store"] == "memory"
    assert body["event_log_head"] > 20


def test_metrics_are_open_prometheus_text_with_route_latency(api: Api) -> None:
    api.ok("/customers/contoso/balance")
    response = api.get("/metrics", role=None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    route = 'route="/customers/{customer_id}/balance"'
    assert f'ledger_api_request_seconds_bucket{{le="0.001",{route}}}' in text
    assert "/customers/contoso" not in text  # route templates, never raw paths
    head = api.ok("/health", role=None)["event_log_head"]  # type: ignore[arg-type]
    assert f"ledger_event_log_head {float(head)}" in text
    assert "ledger_messages_total" in text and "ledger_events_published_total" in text


def test_openapi_documents_every_endpoint_with_bearer_auth_and_problems(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/health", "/metrics", *[p.replace("contoso", "{customer_id}") for p in PROTECTED]} \
        <= paths  # fmt: skip
    balance = schema["paths"]["/customers/{customer_id}/balance"]["get"]
    assert balance["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    problem = balance["responses"]["404"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in schema["components"]["schemas"]


# ---- customers --------------------------------------------------------------------------


def test_customer_profile(api: Api) -> None:
    body = api.ok("/customers/contoso", role="reader")
    assert body == {
        "customer_id": "contoso", "name": "contoso Ltd", "currency": "USD",
        "email": "ap@example.com", "payment_terms_days": 30, "collections_policy": "standard",
        "status": "active", "suspended_subscriptions": [],
        "registered_at": "2025-01-05T10:00:00+00:00", "tax_rate": "0", "tax_exempt": False,
        "tax_id": None, "country": None, "address": None,
    }  # fmt: skip


def test_a_suspended_customer_shows_its_suspended_subscriptions(api: Api) -> None:
    body = api.ok("/customers/late-1")
    assert body["status"] == "suspended"
    assert body["suspended_subscriptions"] == ["sub-late-1-1"]


@pytest.mark.parametrize(
    "url", ["/customers/nobody", "/customers/nobody/balance", "/customers/nobody/invoices",
            "/customers/nobody/events"],
)  # fmt: skip
def test_an_unknown_customer_is_a_404_problem(api: Api, url: str) -> None:
    assert_problem(api.get(url), 404, "unknown_customer", "'nobody'")


def test_a_customer_id_that_cannot_exist_names_the_field(api: Api) -> None:
    assert_problem(api.get("/customers/a%20b"), 422, "invalid_request", "customer_id")


def test_balance_today_is_the_spec_row(api: Api) -> None:
    body = api.ok("/customers/contoso/balance", role="reader")
    assert body == {
        "customer_id": "contoso", "name": "contoso Ltd", "currency": "USD",
        "billed": "140.00", "unbilled": "0.00", "paid": "30.00", "credited": "0.00",
        "refunded": "0.00", "written_off": "0.00", "outstanding": "110.00",
        "unapplied_credit": "0.00", "balance": "110.00", "overdue": "70.00", "days_past_due": 17,
        "aging": {"current": "40.00", "d1_30": "70.00", "d31_60": "0.00", "d61_90": "0.00",
                  "d90_plus": "0.00"},
        "status": "active", "last_payment_date": "2025-02-10",
    }  # fmt: skip


@pytest.mark.parametrize("as_of", [None, "2025-01-20", "2025-02-05", "2025-04-10"])
def test_the_balance_sent_without_response_validation_is_the_models_json(
    api: Api, as_of: str | None
) -> None:
    """The balance route sends balance_row's JSON as is (no response validation: issue
    #22): it must be exactly what validating it against `Balance` would have sent."""
    from ledger.api.models import Balance

    body = api.ok("/customers/contoso/balance", **({"as_of": as_of} if as_of else {}))
    assert Balance.model_validate(body).model_dump(mode="json") == body
    assert list(body) == list(Balance.model_fields)  # the documented field order too


def test_balance_as_of_a_past_date_replays_history(api: Api) -> None:
    before_invoice = api.ok("/customers/contoso/balance", as_of="2025-01-20")
    assert (before_invoice["billed"], before_invoice["unbilled"]) == ("0.00", "100.00")
    before_payment = api.ok("/customers/contoso/balance", as_of="2025-02-05")
    assert before_payment["billed"] == "100.00" and before_payment["paid"] == "0.00"
    assert before_payment["outstanding"] == "100.00" and before_payment["overdue"] == "0.00"
    assert before_payment["last_payment_date"] is None


def test_balance_as_of_a_future_date_ages_the_open_invoices(api: Api) -> None:
    body = api.ok("/customers/contoso/balance", as_of="2025-04-10")
    assert body["days_past_due"] == 38 and body["aging"]["d31_60"] == "70.00"
    assert body["aging"]["d1_30"] == "40.00"


def test_balance_before_the_customer_existed_is_a_404(api: Api) -> None:
    body = assert_problem(
        api.get("/customers/contoso/balance", as_of="2025-01-01"), 404, "unknown_customer"
    )
    assert "2025-01-01" in body["message"]


@pytest.mark.parametrize("bad", ["2025-13-01", "yesterday", "2025-02-30"])
def test_a_bad_as_of_names_the_field(api: Api, bad: str) -> None:
    body = assert_problem(
        api.get("/customers/contoso/balance", as_of=bad), 422, "invalid_request", "as_of"
    )
    assert body["errors"][0]["field"] == "as_of"


def test_invoices_page_by_page(api: Api) -> None:
    items, pages = api.all_pages("/customers/contoso/invoices", limit=1)
    assert pages == 2
    assert items == [
        {"invoice_id": "INV-contoso-2025-01", "kind": "invoice", "billing_period": "2025-01",
         "invoice_date": "2025-02-01", "due_date": "2025-03-03", "currency": "USD",
         "subtotal": "100.00", "tax": "0.00", "total": "100.00", "paid": "30.00",
         "credited": "0.00", "written_off": "0.00", "open": "70.00", "status": "partially_paid",
         "days_past_due": 17},
        {"invoice_id": "INV-contoso-2025-02", "kind": "invoice", "billing_period": "2025-02",
         "invoice_date": "2025-03-01", "due_date": "2025-03-31", "currency": "USD",
         "subtotal": "40.00", "tax": "0.00", "total": "40.00", "paid": "0.00",
         "credited": "0.00", "written_off": "0.00", "open": "40.00", "status": "open",
         "days_past_due": 0},
    ]  # fmt: skip
    paid = api.ok("/customers/fabrikam/invoices")["items"]
    assert [(i["status"], i["open"]) for i in paid] == [("paid", "0.00")]


def test_invoices_as_of_a_past_date(api: Api) -> None:
    body = api.ok("/customers/contoso/invoices", as_of="2025-02-20")
    assert [i["invoice_id"] for i in body["items"]] == ["INV-contoso-2025-01"]
    assert body["items"][0]["open"] == "70.00" and body["next_cursor"] is None


def test_events_are_the_audit_history_in_stream_order_page_by_page(api: Api) -> None:
    whole = api.ok("/customers/contoso/events", role="auditor", limit=500)
    assert whole["next_cursor"] is None
    items, pages = api.all_pages("/customers/contoso/events", limit=2)
    assert items == whole["items"] and pages == (len(items) + 1) // 2
    assert [e["stream_position"] for e in items] == list(range(1, len(items) + 1))
    positions = [e["global_position"] for e in items]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    first = items[0]
    assert first["event_type"] == "CustomerRegistered" and first["customer_id"] == "contoso"
    assert set(first) >= {"event_id", "event_type", "schema_version", "customer_id",
                          "stream_position", "global_position", "occurred_at", "recorded_at",
                          "data", "prev_hash", "hash"}  # fmt: skip
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(items))
    types = [e["event_type"] for e in items]
    assert {"ChargePosted", "InvoiceIssued", "PaymentReceived", "PaymentApplied",
            "SupportTicketOpened", "SupportTicketEscalated"} <= set(types)  # fmt: skip


def test_event_global_positions_match_the_notification_log(api: Api) -> None:
    from ledger.app.views import published_events

    ledger = api.client.app.state.reader.app  # type: ignore[attr-defined]
    expected = [e for e in published_events(ledger) if e["customer_id"] == "fabrikam"]
    got = api.ok("/customers/fabrikam/events", role="auditor")["items"]
    assert [(e["event_id"], e["global_position"]) for e in got] == [
        (e["event_id"], e["global_position"]) for e in expected
    ]


# ---- views ------------------------------------------------------------------------------


def test_delinquency_most_days_past_due_first_page_by_page(api: Api) -> None:
    items, pages = api.all_pages("/delinquency", limit=2)
    assert pages == 3
    assert [(d["customer_id"], d["days_past_due"]) for d in items] == [
        ("late-1", 42), ("late-2", 37), ("late-3", 32), ("late-4", 27), ("contoso", 17),
    ]  # fmt: skip
    late = items[0]
    assert late["last_action"] == "suspend" and late["suspended_since"] == "2025-03-20"
    assert late["overdue"] == "20.00" and late["policy"] == "standard"


def test_delinquency_as_of_a_past_date(api: Api) -> None:
    items = api.ok("/delinquency", as_of="2025-02-20")["items"]
    assert [(d["customer_id"], d["days_past_due"]) for d in items] == [
        ("late-1", 14), ("late-2", 9), ("late-3", 4),
    ]  # fmt: skip
    assert all(d["last_action"] is None for d in items)


def test_remittance_per_period_and_filtered(api: Api) -> None:
    rows = api.ok("/remittance", role="reader")["items"]
    assert [(r["billing_period"], r["currency"], r["cost_accrued"]) for r in rows] == [
        ("2025-01", "USD", "184.00"), ("2025-02", "USD", "32.00"),
    ]  # fmt: skip
    only = api.ok("/remittance", period="2025-02")["items"]
    assert [r["billing_period"] for r in only] == ["2025-02"]
    assert_problem(api.get("/remittance", period="2025-2"), 422, "invalid_request", "period")


def test_support_tickets_by_status(api: Api) -> None:
    rows = api.ok("/support/tickets", role="reader")["items"]
    assert [(t["customer_id"], t["ticket_id"], t["status"]) for t in rows] == [
        ("contoso", "T-1", "escalated"), ("fabrikam", "T-9", "resolved"),
    ]  # fmt: skip
    escalated = api.ok("/support/tickets", status="escalated")["items"]
    assert [t["ticket_id"] for t in escalated] == ["T-1"]
    assert escalated[0]["escalations"][0]["vehicle"] == "microsoft_commercial"
    assert api.ok("/support/tickets", customer_id="fabrikam")["items"][0]["ticket_id"] == "T-9"
    assert_problem(api.get("/support/tickets", status="closed"), 422, "invalid_request", "status")


def test_trial_balance_sums_to_zero_page_by_page(api: Api) -> None:
    items, pages = api.all_pages("/trial-balance", limit=3)
    assert pages > 1
    assert items == api.ok("/trial-balance")["items"]
    assert sum(Decimal(r["balance"]) for r in items) == 0
    assert sum(Decimal(r["debit"]) for r in items) == sum(Decimal(r["credit"]) for r in items)


def test_an_empty_view_is_an_explicit_empty_page(api: Api) -> None:
    assert api.ok("/remittance", period="2030-01") == {"items": [], "next_cursor": None}


def test_an_unknown_query_parameter_is_refused_not_ignored(api: Api) -> None:
    body = assert_problem(
        api.get("/customers/contoso/balance", asof="2025-01-20"), 422, "invalid_request", "asof"
    )
    assert "as_of" in body["message"]  # what it does take


# ---- pagination -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_limit_is_1_to_500(api: Api, limit: str) -> None:
    assert_problem(api.get("/delinquency", limit=limit), 422, "invalid_request", "limit")


@pytest.mark.parametrize("cursor", ["nonsense", "e30", "eyJzIjoiZGVsaW5xdWVuY3kiLCJrIjpbMV19"])
def test_a_bad_cursor_is_a_400(api: Api, cursor: str) -> None:
    body = assert_problem(api.get("/delinquency", cursor=cursor), 400, "bad_cursor", "cursor")
    assert body["errors"] == [{"field": "cursor", "message": body["message"]}]


def test_a_cursor_of_another_list_is_refused(api: Api) -> None:
    cursor = api.ok("/delinquency", limit=1)["next_cursor"]
    assert_problem(api.get("/trial-balance", cursor=cursor), 400, "bad_cursor")
    events = api.ok("/customers/contoso/events", limit=1)["next_cursor"]
    assert_problem(api.get("/customers/fabrikam/events", cursor=events), 400, "bad_cursor")


def test_default_limit_is_100(api: Api) -> None:
    body = api.ok("/customers/contoso/events")
    assert len(body["items"]) < 100 and body["next_cursor"] is None


# ---- authentication and roles -----------------------------------------------------------


@pytest.mark.parametrize("url", PROTECTED)
def test_every_endpoint_but_health_and_metrics_needs_a_token(api: Api, url: str) -> None:
    response = api.get(url, role=None)
    assert_problem(response, 401, "unauthenticated", "bearer")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "lgr_abc", "Bearer lgr_" + "x" * 43])  # fmt: skip
def test_a_bad_token_is_a_401(api: Api, header: str) -> None:
    response = api.client.get("/customers/contoso", headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] in ("unauthenticated", "invalid_token")


def test_a_reader_may_not_read_event_histories(api: Api) -> None:
    body = assert_problem(api.get("/customers/contoso/events", role="reader"), 403, "forbidden")
    assert "auditor" in body["message"]


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_read_event_histories(api: Api, role: str) -> None:
    assert api.ok("/customers/contoso/events", role=role)["items"]


@pytest.mark.parametrize("role", tokens.ROLES)
@pytest.mark.parametrize("url", [u for u in PROTECTED if not u.endswith("/events")])
def test_every_role_reads_the_views(api: Api, role: str, url: str) -> None:
    assert api.get(url, role=role).status_code == 200


def test_auth_comes_before_validation_and_existence(api: Api) -> None:
    # Without a token nobody learns whether a customer exists or a parameter is wrong.
    assert api.get("/customers/nobody/balance", role=None, as_of="bad").status_code == 401
    assert api.get("/customers/nobody/events", role="reader").status_code == 403


def test_a_revoked_token_is_refused_at_the_next_request(tmp_path: Path) -> None:
    api = build_api(tmp_path, make_ledger())
    assert api.get("/customers/contoso", role="reader").status_code == 200
    tokens.revoke(api.tokens_file, "reader-1")
    assert_problem(api.get("/customers/contoso", role="reader"), 401, "invalid_token")
    assert api.get("/customers/contoso", role="admin").status_code == 200
    new = tokens.create(api.tokens_file, "late-comer", "reader")
    response = api.client.get("/customers/contoso", headers={"Authorization": f"Bearer {new}"})
    assert response.status_code == 200


def test_without_a_tokens_file_everything_but_health_is_refused(tmp_path: Path) -> None:
    settings = Settings(database_url="memory://", api_tokens_file=tmp_path / "missing.toml")
    client = TestClient(create_app(settings, make_ledger()))
    assert client.get("/health").status_code == 200
    response = client.get("/delinquency", headers={"Authorization": "Bearer lgr_anything"})
    assert_problem(response, 401, "invalid_token")


def test_a_broken_tokens_file_authorises_nobody(tmp_path: Path) -> None:
    api = build_api(tmp_path, make_ledger())
    api.tokens_file.write_text("[[tokens]\nname = ", encoding="utf-8")
    assert_problem(api.get("/delinquency"), 401, "invalid_token")


# ---- errors -----------------------------------------------------------------------------


def test_unknown_routes_and_methods_are_problems_too(api: Api) -> None:
    assert_problem(api.get("/nothing-here"), 404, "not_found")
    response = api.client.post("/delinquency", headers={"Authorization": "Bearer x"})
    assert_problem(response, 405, "method_not_allowed")


def test_a_store_outage_is_a_503_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventsourcing.persistence import OperationalError

    api = build_api(tmp_path, make_ledger())

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    reader = api.client.app.state.reader  # type: ignore[attr-defined]
    monkeypatch.setattr(reader.app, "head_position", down)
    monkeypatch.setattr(reader, "account", down)
    assert_problem(api.get("/health", role=None), 503, "store_unavailable")
    response = api.get("/customers/contoso/balance")
    assert_problem(response, 503, "store_unavailable")
    assert response.headers["retry-after"] == "1"


# ---- event store backends ---------------------------------------------------------------


def unlinked(items: Any) -> Any:
    """Events (a list, or a page's `items`) without their hash links: two ledgers of the same
    messages differ there, as the links cover the sealed personal fields, whose ciphertext
    depends on each ledger's own random key (SPEC §13); the fields read the same in clear."""
    if isinstance(items, dict):
        return {**items, "items": unlinked(items["items"])}
    return [{k: v for k, v in e.items() if k not in ("hash", "prev_hash")} for e in items]


def test_events_and_balance_read_the_same_on_sqlite(tmp_path: Path, api: Api) -> None:
    sqlite = build_api(tmp_path, make_ledger(f"sqlite:///{tmp_path / 'events.db'}"))
    for url in ("/customers/contoso/events", "/customers/late-2/events"):
        # Same messages, same clock, same order: the very same history, positions included.
        assert unlinked(sqlite.all_pages(url, limit=3)[0]) == unlinked(
            api.ok(url, limit=500)["items"]
        )
    assert sqlite.ok("/customers/contoso/balance") == api.ok("/customers/contoso/balance")


def test_an_unknown_query_parameter_is_refused_naming_it(api: Api) -> None:
    # `?perod=` (a typo) must not answer every period as if it were the question asked.
    assert_problem(api.get("/remittance", perod="2026-01"), 422, "invalid_request", "perod:")
    assert_problem(api.get("/health", role=None, verbose="1"), 422, "invalid_request", "verbose")
    api.ok("/remittance", period="2026-01")


def test_tax_per_period_and_currency(api: Api) -> None:
    """SPEC §12: the fixture's customers carry no tax (rate 0): the figures are taxable only."""
    body = api.ok("/tax", role="reader")
    assert body["items"] == [
        {"billing_period": "2025-01", "currency": "USD", "taxable": "230.00",
         "tax_invoiced": "0.00", "tax_credited": "0.00", "tax_due": "0.00"},
        {"billing_period": "2025-02", "currency": "USD", "taxable": "40.00",
         "tax_invoiced": "0.00", "tax_credited": "0.00", "tax_due": "0.00"},
    ]  # fmt: skip
    assert [r["billing_period"] for r in api.ok("/tax", period="2025-02")["items"]] == ["2025-02"]
    assert_problem(api.get("/tax", period="2025-13"), 422, "invalid_request", "period")


def test_a_voided_and_a_written_off_invoice_show_their_status(tmp_path: Path) -> None:
    ledger = make_ledger()
    ledger.void_invoice("INV-fabrikam-2025-01", "wrong", at=TODAY)
    written = ledger.handle_batch(msgs([build(
        "write_off", "contoso", "wo-1", write_off_id="WO-1", amount="70.00", currency="USD",
        reason="insolvent", invoice_id="INV-contoso-2025-01", occurred_at=at("2025-03-20"),
    )]))  # fmt: skip
    assert written.outcomes[0].status == "applied"
    api = build_api(tmp_path, ledger)
    fabrikam = api.ok("/customers/fabrikam/invoices")["items"]
    assert [(i["status"], i["paid"], i["open"]) for i in fabrikam] == [("void", "0.00", "0.00")]
    assert api.ok("/customers/fabrikam/balance")["unapplied_credit"] == "50.00"
    contoso = api.ok("/customers/contoso/invoices")["items"][0]
    assert (contoso["status"], contoso["paid"], contoso["written_off"], contoso["open"]) == (
        "written_off", "30.00", "70.00", "0.00"
    )  # fmt: skip
    balance = api.ok("/customers/contoso/balance")
    assert (balance["written_off"], balance["outstanding"], balance["paid"]) == (
        "70.00", "40.00", "30.00"
    )  # fmt: skip
