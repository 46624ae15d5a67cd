"""The web console's pages (SPEC §15): p99 server time of each page over N customers on
PostgreSQL projection rows (production shape), next to the raw limits of the same run: the
API's JSON endpoint for the same data, and a bare SELECT of all the projection rows of the
page's view (what computing the page from the rows per request would read at least; the pages
read the summary tables instead, projections/summaries.py).

    eval "$(deploy/services up)"
    .venv/bin/python benchmarks/console.py [--customers 10000] [--requests 100] [--quick]
    .venv/bin/python benchmarks/console.py --keep ...          # keep the store it built, then
    .venv/bin/python benchmarks/console.py --database URL ...  # time again without building

The store: N customers, each registered and charged for two months, invoiced, half of them
paid, one in ten with a support ticket, then one collections run (reminders, suspensions),
in a scratch PostgreSQL database (dropped at the end); the projection rows are rebuilt into
it as `ledger project` keeps them. Requests go through the app in-process (ASGI, no network,
one at a time, a session cookie as a browser sends it): the time is the server's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from benchmarks.support import (  # noqa: E402
    bootstrap,
    create_database,
    drop_database,
    machine,
    percentile,
)
from ledger.api import create_app  # noqa: E402
from ledger.app.application import LedgerApplication  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.logs import configure_logging  # noqa: E402
from ledger.store import tokens  # noqa: E402
from ledger.store.db import Database  # noqa: E402
from ledger.store.eventstore import eventsourcing_env  # noqa: E402
from ledger.store.readmodels import rebuild  # noqa: E402
from tests.helpers import (  # noqa: E402
    charge,
    customer_registered,
    msgs,
    payment,
    support_escalated,
    support_ticket_opened,
)

TODAY = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
TARGET_MS = 50


def customer_id(i: int) -> str:
    return f"cust-{i:05d}"


def build_store(url: str, customers: int) -> LedgerApplication:
    app = LedgerApplication(eventsourcing_env(url), clock=lambda: TODAY)
    first: list[str] = []
    for i in range(customers):
        cid = customer_id(i)
        first += [
            customer_registered(
                cid, payment_terms_days=5 + i % 40, occurred_at="2025-01-05T10:00:00Z"
            ),
            charge(cid, "CH-1", f"{100 + i % 50}.00", occurred_at="2025-01-10T10:00:00Z"),
            charge(
                cid, "CH-2", "40.00", billing_period="2025-02", occurred_at="2025-02-10T10:00:00Z"
            ),
        ]
        if i % 10 == 0:
            first += [
                support_ticket_opened(cid, "T-1", occurred_at="2025-02-03T10:00:00Z"),
                support_escalated(cid, "T-1", occurred_at="2025-02-04T10:00:00Z"),
            ]
    _feed(app, first)
    app.run_invoices("2025-01", date(2025, 2, 1))
    _feed(
        app,
        [
            payment(customer_id(i), "PAY-1", "50.00", occurred_at="2025-02-15T10:00:00Z")
            for i in range(0, customers, 2)
        ],
    )
    app.run_invoices("2025-02", date(2025, 3, 1))
    app.run_collections(TODAY.date())
    return app


def _feed(app: LedgerApplication, raws: list[str]) -> None:
    for start in range(0, len(raws), 1000):
        app.handle_batch(msgs(raws[start : start + 1000]))


def timed(call: Callable[[], Any], requests: int) -> list[float]:
    call()  # warm: imports, prepared statements, the pool's connections
    out = []
    for _ in range(requests):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=100, help="per page")
    parser.add_argument("--quick", action="store_true", help="500 customers, 20 requests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", help="a database a --keep run built: time, do not build")
    args = parser.parse_args()
    customers, requests = (500, 20) if args.quick else (args.customers, args.requests)
    configure_logging("console", "warning")
    with contextlib.ExitStack() as stack:
        if args.database:
            url = args.database
            ledger = LedgerApplication(eventsourcing_env(url), clock=lambda: TODAY)
        else:
            url = create_database("console")
            if not args.keep:
                stack.callback(drop_database, url)
            began = time.perf_counter()
            ledger = build_store(url, customers)
            db = Database(url)
            rebuild(ledger, db)
            db.close()
            print(
                f"store: {customers} customers, {ledger.head_position()} events, built in "
                f"{time.perf_counter() - began:.0f} s ({url if args.keep else 'scratch'})",
                file=sys.stderr,
            )
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        path = Path(tmp) / "tokens.toml"
        token = tokens.create(path, "bench", "admin")
        settings = Settings(database_url=url, api_tokens_file=path, kafka_bootstrap=bootstrap())
        api = create_app(settings, ledger)
        client = stack.enter_context(TestClient(api))
        results = run(client, token, url, customers, requests)
        steps = overview_steps(api.state.reader, requests)
    report = {
        "customers": customers,
        "requests_per_page": requests,
        "target_p99_ms": TARGET_MS,
        "pages": results,
        "overview_steps": steps,
        "machine": machine(),
    }
    print(json.dumps(report, indent=2))
    print(table(results), file=sys.stderr)
    print(steps_table(steps, customers), file=sys.stderr)


def run(
    client: TestClient, token: str, url: str, customers: int, requests: int
) -> list[dict[str, Any]]:
    form = client.get("/ui/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed = client.post(
        "/ui/signin", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    bearer = {"Authorization": f"Bearer {token}"}
    one = customer_id(customers // 2)

    def page(path: str) -> Callable[[], Any]:
        def call() -> None:
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 200, (path, response.status_code)

        return call

    def api(path: str) -> Callable[[], Any]:
        def call() -> None:
            response = client.get(path, headers=bearer)
            assert response.status_code == 200, (path, response.text[:200])

        return call

    db = Database(url)

    def select(projection: str) -> Callable[[], Any]:
        def call() -> None:
            db.execute(
                "SELECT key, doc FROM projection_rows WHERE projection = %s", (projection,)
            ).fetchall()
            db.commit()

        return call

    pages = [
        ("overview", "/ui/", "/delinquency?limit=50", "accounts"),
        ("collections", "/ui/collections", "/delinquency?limit=50", "accounts"),
        (
            "collections sorted by amount",
            "/ui/collections?sort=amount",
            "/delinquency?limit=50",
            "accounts",
        ),
        ("customer search", f"/ui/customers?q={one[:-1]}", "/delinquency?limit=50", "accounts"),
        ("customer", f"/ui/customers/{one}", f"/customers/{one}/events", None),
        ("microsoft", "/ui/microsoft", "/remittance?limit=50", "remittance"),
        ("support", "/ui/support", "/support/tickets?limit=50", "support"),
        ("audit", "/ui/audit", "/trial-balance", "journal"),
    ]
    out = []
    for name, ui_path, api_path, projection in pages:
        ui = timed(page(ui_path), requests)
        raw = timed(api(api_path), requests)
        row: dict[str, Any] = {
            "page": name,
            "path": ui_path,
            "p50_ms": percentile(ui, 50),
            "p99_ms": percentile(ui, 99),
            "api_path": api_path,
            "api_p99_ms": percentile(raw, 99),
        }
        if projection is not None:
            row["select"] = f"SELECT all {projection} rows"
            row["select_p99_ms"] = percentile(timed(select(projection), requests), 99)
        row["ratio_to_api"] = row["p99_ms"] / row["api_p99_ms"]
        out.append(row)
        print(
            f"{name}: p99 {row['p99_ms']:.1f} ms (API {row['api_p99_ms']:.1f} ms)", file=sys.stderr
        )
    db.close()
    return out


def overview_steps(reader: Any, requests: int) -> list[dict[str, Any]]:
    """Where the overview's time goes: p50 of each step of `ledger.ui.data.overview`, called
    directly (no HTTP, no template), next to the bare SELECT of the accounts rows (the raw
    limit of the Python views the overview was computed by before the summary tables)."""
    from ledger.ui import data
    from projections import summary_queries as queries

    day = reader.today()

    def bare() -> None:
        with reader.rows() as store:
            store.db.execute(
                "SELECT key, doc::text FROM projection_rows WHERE projection = 'accounts'"
            ).fetchall()

    def on_summaries(query: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> None:
            with reader.rows() as store:
                query(store.db)

        return call

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("bare SELECT of the accounts rows (raw limit)", bare),
        (
            "aging, months and counts (2 SQL queries)",
            on_summaries(lambda db: queries.receivables(db, day)),
        ),
        ("remittance view", lambda: reader.view("remittance", day, False)),
        ("the whole overview()", lambda: data.overview(reader)),
    ]
    return [{"step": name, "p50_ms": percentile(timed(call, requests), 50)} for name, call in steps]


def steps_table(steps: list[dict[str, Any]], customers: int) -> str:
    raw = steps[0]["p50_ms"]
    lines = [
        f"| overview step ({customers} customers) | p50 ms | / bare SELECT | µs per customer |",
        "|---|---|---|---|",
    ]
    for step in steps:
        ms = step["p50_ms"]
        lines.append(
            f"| {step['step']} | {ms:.1f} | {ms / raw:.1f} | {ms * 1000 / customers:.0f} |"
        )
    return "\n".join(lines)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| page | p50 ms | p99 ms | API JSON p99 ms (same data) | ratio | bare SELECT p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        select = f"{r['select_p99_ms']:.1f}" if "select_p99_ms" in r else "-"
        lines.append(
            f"| {r['page']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['api_p99_ms']:.1f} (`{r['api_path']}`) | {r['ratio_to_api']:.2f} | "
            f"{select} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
