"""The web console in a real browser (SPEC §15): Debian's chromium driven by Playwright, over
a real HTTP server, on the embedded SQLite store and on PostgreSQL projection rows.

Signs in, walks every page (saving a screenshot of each under the test's output folder),
follows a customer from the collections worklist to its invoice document, checks that the
figures on the pages equal the API's, and that a reader is refused the auditor's page.
`LEDGER_UPDATE_SCREENSHOTS=1` also writes the README's pictures to docs/."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.stores import CUSTOMERS, VOIDED, WRITTEN_OFF, Console, console_app, serving
from tests.helpers import run_cli

CHROMIUM = "/usr/bin/chromium"  # Debian's package (deploy/test installs it when missing)
DOCS = Path(__file__).resolve().parents[2] / "docs"
README_SHOTS = {  # page: (picture, its height in pixels from the top of the page)
    "overview": ("console-overview.png", 900),
    "collections": ("console-collections.png", 900),
    "customer": ("console-customer.png", 1300),  # down to the invoices table
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'ledger.db'}"
        app, ledger, by_role = console_app(tmp, url, stored=False)
    else:
        url = request.getfixturevalue("_pg_databases").create("console_browser")
        kafka = request.getfixturevalue("kafka_bootstrap")
        app, ledger, by_role = console_app(tmp, url, stored=True, kafka=kafka)
    with serving(app) as base:
        yield Console(base, url, by_role, ledger, app)


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    store = request.node.callspec.params["console"]

    def shoot(page: Page, name: str) -> None:
        page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
        if (
            os.environ.get("LEDGER_UPDATE_SCREENSHOTS") == "1"
            and store == "sqlite"
            and (name in README_SHOTS)
        ):
            picture, height = README_SHOTS[name]
            clip = {"x": 0, "y": 0, "width": 1280, "height": height}
            page.screenshot(path=DOCS / picture, full_page=True, clip=clip)  # type: ignore[arg-type]

    shoot.folder = tmp_path  # type: ignore[attr-defined]
    return shoot


def sign_in(browser: Browser, console: Console, role: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(console.base + "/ui/")
    expect(page).to_have_url(console.base + "/ui/signin?next=%2Fui%2F")
    page.get_by_label("API token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.base + "/ui/")
    return page


def cells(page: Page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


INVOICE_FIELDS = (
    "invoice_id", "subtotal", "tax", "total", "paid", "credited", "written_off", "open",
    "status", "days_past_due",
)  # fmt: skip


def check_customer_page(page: Page, console: Console, customer: str) -> list[dict[str, Any]]:
    """The customer page's balance and every SPEC §12 column of its invoices equal
    `GET /customers/{id}/balance` and `.../invoices`, row by row; the API's invoice rows."""
    balance = console.api(f"/customers/{customer}/balance")
    for field in ("billed", "paid", "written_off", "outstanding", "balance", "overdue",
                  "days_past_due"):  # fmt: skip
        shown = page.locator(f'#balance td[data-field="{field}"]').inner_text()
        assert shown == str(balance[field]), (customer, field)
    invoices = console.api(f"/customers/{customer}/invoices")["items"]
    shown_rows = page.locator("#invoices tbody tr").evaluate_all(
        """rows => rows.map(r => Object.fromEntries([['invoice_id', r.dataset.invoice]].concat(
             Array.from(r.querySelectorAll('td[data-field]'),
                        c => [c.dataset.field, c.dataset.status || c.innerText.trim()]))))"""
    )
    assert shown_rows == [{f: str(i[f]) for f in INVOICE_FIELDS} for i in invoices], customer
    return list(invoices)


def test_walk_every_page_with_the_apis_figures(
    browser: Browser, console: Console, shots: Any
) -> None:
    page = sign_in(browser, console, "admin")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # Overview: aging = the sum of every customer's balance aging in the API; counts link on.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Overview")
    balances = [console.api(f"/customers/{c}/balance") for c in CUSTOMERS]
    currency = balances[0]["currency"]
    for bucket in ("current", "d1_30", "d31_60", "d61_90", "d90_plus"):
        total = sum(Decimal(b["aging"][bucket]) for b in balances)
        shown = page.locator(f'#aging tr[data-currency="{currency}"] td[data-bucket="{bucket}"]')
        assert Decimal(shown.inner_text()) == total, bucket
    delinquency = console.api("/delinquency")["items"]
    assert page.locator('[data-count="delinquent"]').inner_text() == str(len(delinquency))
    # Invoiced (void left out), cash collected (payments, not credits nor write-offs) and
    # overdue per billing month: sums of the API's invoice rows.
    months: dict[str, list[Decimal]] = {}
    statuses = set()
    for customer in CUSTOMERS:
        for item in console.api(f"/customers/{customer}/invoices")["items"]:
            statuses.add(item["status"])
            if item["kind"] == "invoice" and item["status"] != "void":
                sums = months.setdefault(item["billing_period"], [Decimal(0)] * 3)
                sums[0] += Decimal(item["total"])
                sums[1] += Decimal(item["paid"])
                if item["days_past_due"] > 0:
                    sums[2] += Decimal(item["open"])
    assert {"void", "written_off", "partially_paid", "paid", "open"} <= statuses
    shown_months = page.locator("#months tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells, c => c.innerText.trim()))"
    )
    assert {row[0]: [Decimal(v) for v in row[2:]] for row in shown_months} == months
    assert page.locator("figure.chart svg").count() >= 2  # aging, and months
    shots(page, "overview")

    # Collections: the worklist is GET /delinquency, row by row, most days past due first.
    page.get_by_role("link", name="Collections", exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Collections")
    assert [r["customer_id"] for r in delinquency] == page.locator(
        "#worklist tbody tr"
    ).evaluate_all("rows => rows.map(r => r.dataset.customer)")
    assert cells(page, '#worklist td[data-field="overdue"]') == [r["overdue"] for r in delinquency]
    assert cells(page, '#worklist td[data-field="days_past_due"]') == [
        str(r["days_past_due"]) for r in delinquency
    ]
    shots(page, "collections")
    page.get_by_role("link", name="Overdue").click()  # sort by amount, largest first
    amounts = [Decimal(a) for a in cells(page, '#worklist td[data-field="overdue"]')]
    assert amounts == sorted(amounts, reverse=True)

    # A collections preview for a chosen date (a POST form with its CSRF token).
    page.get_by_label("Run date").fill("2025-04-30")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview caption")).to_contain_text("A run on 2025-04-30 would fire")
    assert page.locator("#preview tbody tr").count() >= 1
    shots(page, "collections-preview")

    # From the worklist to a customer: every balance figure equals GET .../balance.
    first = delinquency[0]["customer_id"]
    page.locator(f'#worklist tr[data-customer="{first}"] th a').click()
    expect(page).to_have_url(f"{console.base}/ui/customers/{first}")
    invoices = check_customer_page(page, console, first)
    expect(page.locator("#chain-status")).to_contain_text("Hash chain intact")
    events = console.api(f"/customers/{first}/events")["items"]
    assert page.locator("#events tbody tr").count() == len(events)
    assert events[-1]["hash"][:16] in page.locator("#events tbody tr").first.inner_text()
    # A voided and reissued invoice, and one written off as bad debt (SPEC §12).
    page.goto(f"{console.base}/ui/customers/late-4")
    written_off = {i["invoice_id"]: i for i in check_customer_page(page, console, "late-4")}
    assert written_off[WRITTEN_OFF]["status"] == "written_off"
    expect(page.locator(f'#invoices tr[data-invoice="{WRITTEN_OFF}"]')).to_contain_text(
        "written off"
    )
    page.goto(f"{console.base}/ui/customers/contoso")
    contoso = {i["invoice_id"]: i for i in check_customer_page(page, console, "contoso")}
    assert contoso[VOIDED]["status"] == "void" and contoso[f"{VOIDED}-2"]["status"] == "open"
    shots(page, "customer")
    page.goto(f"{console.base}/ui/customers/{first}")
    balance = console.api(f"/customers/{first}/balance")

    # ... and on to its invoice as the customer reads it.
    invoice = invoices[0]["invoice_id"]
    page.get_by_role("link", name=invoice, exact=True).click()
    expect(page.locator("body")).to_contain_text(invoice)
    shots(page, "invoice-document")
    page.go_back()
    pdf = page.request.get(f"{console.base}/ui/customers/{first}/invoices/{invoice}.pdf")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    page.get_by_role("link", name="Statement of account").click()
    expect(page.locator("body")).to_contain_text(balance["name"])
    shots(page, "statement")

    # Microsoft, Support and Audit: the API's rows.
    page.goto(console.base + "/ui/microsoft")
    remittance = console.api("/remittance")["items"]
    assert sorted(cells(page, '#remittance td[data-field="exposure"]')) == sorted(
        r["exposure"] for r in remittance
    )
    shots(page, "microsoft")
    page.get_by_role("link", name="Support", exact=True).click()
    for status in ("open", "escalated", "resolved"):
        tickets = console.api("/support/tickets", status=status)["items"]
        assert page.locator(f'[data-count="{status}"]').inner_text() == str(len(tickets))
    every = console.api("/support/tickets")["items"]
    assert cells(page, "#tickets tbody th") == [t["ticket_id"] for t in every]
    shots(page, "support")
    page.get_by_role("link", name="Audit", exact=True).click()
    trial = console.api("/trial-balance")["items"]
    assert cells(page, '#trial-balance td[data-field="balance"]') == [
        r["balance"] for r in trial[:50]
    ]
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#verification")).to_contain_text("every chain intact")
    expect(page.locator("#verification")).to_contain_text("OK: 1 checkpoints verified")
    assert page.locator("#checkpoints tbody tr").count() == 1
    shots(page, "audit")
    # The journal of a date range: line for line what `ledger export journal` writes.
    page.get_by_label("Posted from").fill("2025-02-01")
    page.get_by_label("to", exact=True).fill("2025-03-20")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the journal").click()
    assert download.value.suggested_filename == "journal-2025-02-01-to-2025-03-20.csv"
    journal = Path(download.value.path()).read_text(encoding="utf-8")
    cli = run_cli(console.database_url, "export", "journal", "--from", "2025-02-01",
                  "--to", "2025-03-20")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert journal == cli.stdout and journal.startswith("entry_id,posting_date,")
    rows = list(csv.DictReader(io.StringIO(journal)))
    assert {r["event_type"] for r in rows} >= {"InvoiceVoided", "InvoiceWrittenOff"}
    for currency in {r["currency"] for r in rows}:
        mine = [r for r in rows if r["currency"] == currency]
        assert sum(Decimal(r["debit"]) for r in mine) == sum(Decimal(r["credit"]) for r in mine)

    # The search box on every page: an exact id goes to that customer.
    page.get_by_label("Find a customer (id or name)").fill("late-2")
    page.get_by_label("Find a customer (id or name)").press("Enter")
    expect(page).to_have_url(f"{console.base}/ui/customers/late-2")

    # Keyboard: the first Tab reaches the skip link; sign out ends the session.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.base + "/ui/signin")
    page.goto(console.base + "/ui/collections")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.close()


def test_a_reader_is_refused_the_auditors_page(
    browser: Browser, console: Console, shots: Any
) -> None:
    page = sign_in(browser, console, "reader")
    expect(page.get_by_role("link", name="Audit", exact=True)).to_have_count(0)
    response = page.goto(console.base + "/ui/audit")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    shots(page, "audit-refused")
    page.goto(console.base + "/ui/customers/contoso")  # the rest is open, the timeline is not
    expect(page.locator("#balance")).to_be_visible()
    expect(page.locator("#events")).to_have_count(0)
    page.close()
