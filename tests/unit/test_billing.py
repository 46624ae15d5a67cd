"""Billing from Microsoft's file (SPEC §10), in-process: every ChargeType mapping, deterministic
charge ids, idempotent re-runs, not_billed reasons, dead letters, FX and the report's sums."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.app.application import LedgerApplication
from ledger.app.billing import (
    BillingReport,
    FileSummary,
    bill_file,
    bill_text,
    charge_ids,
    lookup_from_accounts,
    lookup_from_registrations,
    scan_file,
)
from ledger.app.ingest import IngestCounts, RawRecord, process_records
from ledger.app.reconcile import import_recon_file, parse_recon_file
from ledger.app.views import compute_view
from ledger.domain.pricebook import PriceBook, load_price_book
from ledger.store.eventstore import eventsourcing_env
from tests import helpers as h

RECORDED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"  # written upper case by Microsoft
BOOK = load_price_book("""
[defaults]
markup_percent = "15"
[fx]
"USD->EUR" = "0.92"
""")


def row(**fields: str) -> dict[str, str]:
    base = {
        "InvoiceNumber": "G000111222", "CustomerId": TENANT, "CustomerName": "Contoso",
        "OrderId": "ord-1", "ProductId": "CFQ7TTC0LH18", "SkuId": "0001",
        "SkuName": "Microsoft 365 Business Basic", "ProductName": "Microsoft 365",
        "ChargeType": "cycleCharge", "UnitPrice": "6.00", "Quantity": "10",
        "BillableQuantity": "10", "Subtotal": "60.00", "Currency": "USD",
        "SubscriptionId": "AAAAAAAA-0000-0000-0000-000000000001",
        "SubscriptionDescription": "M365 Basic", "ChargeStartDate": "2/1/2026",
        "ChargeEndDate": "2/28/2026", "TermAndBillingCycle": "1 Year - Monthly billing",
        "BillingFrequency": "Monthly",
    }  # fmt: skip
    return {**base, **fields}


def csv_bytes(rows: list[dict[str, str]], reverse_columns: bool = False) -> bytes:
    header = list(rows[0])
    if reverse_columns:
        header.reverse()
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


@pytest.fixture
def app() -> LedgerApplication:
    ledger = LedgerApplication(eventsourcing_env("memory://"), clock=lambda: RECORDED)
    registered = [h.customer_registered(TENANT.lower()),
                  h.customer_registered("eur-customer", currency="EUR"),
                  h.customer_registered("gbp-customer", currency="GBP")]  # fmt: skip
    assert ledger.handle_batch(h.msgs(registered)).count("applied") == 3
    return ledger


def bill(app: LedgerApplication, raw: bytes, book: PriceBook = BOOK, **options: Any) -> Any:
    sent: list[dict[str, Any]] = []

    def send(records: list[RawRecord]) -> IngestCounts:
        sent.extend(json.loads(r.value) for r in records)
        return process_records(app, records)

    dry = options.pop("dry_run", False)
    report = bill_file(raw, book, lookup_from_accounts(app.find), None if dry else send,
                       **options)  # fmt: skip
    return report, sent


def charges(app: LedgerApplication) -> list[dict[str, Any]]:
    return [e.data for e in app.charge_events()]


@pytest.mark.parametrize(
    ("microsoft", "ours", "subtotal"),
    [
        ("new", "new", "60.00"), ("renew", "renew", "60.00"), ("cycleCharge", "cycle", "60.00"),
        ("addQuantity", "add_quantity", "60.00"), ("removeQuantity", "remove_quantity", "-60.00"),
        ("cancelImmediate", "cancel_refund", "-60.00"), ("cancel", "cancel_refund", "-60.00"),
        ("convert", "convert", "60.00"), ("convert", "convert", "-60.00"),
        ("customerCredit", "customer_credit", "-60.00"), ("usage", "usage", "60.00"),
        ("oneTime", "one_time", "60.00"), ("CYCLECHARGE", "cycle", "60.00"),
    ],
)  # fmt: skip
def test_every_charge_type_maps_and_keeps_the_raw_value(
    app: LedgerApplication, microsoft: str, ours: str, subtotal: str
) -> None:
    report, _ = bill(app, csv_bytes([row(ChargeType=microsoft, Subtotal=subtotal)]))
    assert (report.billed, report.not_billed) == (1, [])
    [data] = charges(app)
    assert (data["charge_type"], data["ms_charge_type"]) == (ours, microsoft)
    expected = (Decimal(subtotal) * Decimal("1.15")).quantize(Decimal("0.01"))
    assert (data["cost"], Decimal(data["amount"])) == (subtotal, expected)


def test_a_charge_carries_the_lines_fields(app: LedgerApplication) -> None:
    bill(app, csv_bytes([row()]))
    [data] = charges(app)
    data.pop("fingerprint")
    assert data == {
        "charge_id": data["charge_id"], "subscription_id": "aaaaaaaa-0000-0000-0000-000000000001",
        "product_id": "CFQ7TTC0LH18", "sku_id": "0001", "description": "M365 Basic",
        "charge_type": "cycle", "quantity": "10", "unit_price": "6.9", "amount": "69.00",
        "currency": "USD", "cost": "60.00", "billing_period": "2026-02",
        "charge_start": "2026-02-01", "charge_end": "2026-02-28",
        "ms_invoice_number": "G000111222", "ms_charge_type": "cycleCharge",
        "cost_currency": "USD", "cost_fx_rate": None,
    }  # fmt: skip
    assert data["charge_id"].startswith("pc-")


def test_billing_twice_posts_nothing_the_second_time(app: LedgerApplication) -> None:
    raw = csv_bytes([row(), row(SubscriptionId="sub-2"), row(SubscriptionId="sub-3")])
    first, _ = bill(app, raw)
    assert (first.billed, first.duplicates) == (3, 0)
    again, _ = bill(app, raw)
    assert (again.billed, again.duplicates, again.not_billed) == (0, 3, [])
    assert len(charges(app)) == 3
    assert again.to_json()["customers"] == first.to_json()["customers"]


def test_charge_ids_never_change_between_versions() -> None:
    # A file billed again after an upgrade must post nothing: the ids are a stored contract
    # (these are the ids the first version gave this file; two identical lines differ by n).
    recon = parse_recon_file(csv_bytes([row(), row(ChargeType="usage"), row()]))
    assert charge_ids(recon) == [
        "pc-e625f00b5a381c80988cbaedb6e996c6d662307d",
        "pc-221a00f607e3375fa931bbcaa8df6a9d55b8dcdf",
        "pc-2960ece90a0657a690c152f4c3175a670b660d23",
    ]


def test_charge_ids_ignore_column_order_date_format_and_id_case() -> None:
    one = parse_recon_file(csv_bytes([row(), row(ChargeType="usage")]))
    other = parse_recon_file(csv_bytes(
        [row(ChargeStartDate="2026-02-01", ChargeEndDate="2026-02-28", CustomerId=TENANT.lower(),
             Quantity="10.0", BillableQuantity="'10"),
         row(ChargeStartDate="2026-02-01", ChargeEndDate="2026-02-28", ChargeType="usage")],
        reverse_columns=True))  # fmt: skip
    assert charge_ids(one) == charge_ids(other)
    assert len(set(charge_ids(one))) == 2


def test_identical_lines_are_two_charges(app: LedgerApplication) -> None:
    report, _ = bill(app, csv_bytes([row(ChargeType="addQuantity")] * 2))
    assert report.billed == 2 and len({c["charge_id"] for c in charges(app)}) == 2


def test_an_unknown_charge_type_is_not_billed_never_guessed(app: LedgerApplication) -> None:
    report, sent = bill(app, csv_bytes([row(), row(ChargeType="somethingNew")]))
    assert report.billed == 1
    assert report.to_json()["not_billed"] == [
        {"line": 3, "reason": "unknown ChargeType 'somethingNew': not one the ledger knows "
                              "(SPEC §10), never guessed"},
    ]  # fmt: skip
    assert len(sent) == 1


def test_a_customer_without_an_fx_rate_is_not_billed(app: LedgerApplication) -> None:
    report, _ = bill(app, csv_bytes([row(CustomerId="gbp-customer")]))
    assert report.billed == 0
    [item] = report.to_json()["not_billed"]
    assert item["line"] == 2 and 'no [fx] rate "USD->GBP"' in item["reason"]
    assert charges(app) == []


def test_an_unknown_customer_is_a_dead_letter_listed_in_the_report(app: LedgerApplication) -> None:
    report, sent = bill(app, csv_bytes([row(), row(CustomerId="stranger")]))
    assert (report.billed, len(sent)) == (1, 2)  # it went through ingest all the same
    [item] = report.to_json()["not_billed"]
    assert item["line"] == 3 and item["reason"].startswith("dead letter unknown_customer")
    assert [c["customer_id"] for c in report.to_json()["customers"]] == [TENANT.lower()]


def test_a_customer_billed_in_eur_from_a_usd_file(app: LedgerApplication) -> None:
    report, _ = bill(app, csv_bytes([row(CustomerId="eur-customer")]))
    [data] = charges(app)
    assert (data["currency"], data["amount"], data["cost"], data["cost_currency"],
            data["cost_fx_rate"]) == ("EUR", "63.48", "60.00", "USD", "0.92")  # fmt: skip
    [customer] = report.to_json()["customers"]
    assert customer == {
        "customer_id": "eur-customer", "currency": "EUR", "lines": 1, "cost": "55.20",
        "amount": "63.48", "margin": "8.28", "margin_percent": "13.04", "below_min_margin": [],
    }  # fmt: skip


def test_credits_reach_the_customer_and_the_report_sums(app: LedgerApplication) -> None:
    raw = csv_bytes([row(), row(ChargeType="removeQuantity", Subtotal="-12.34",
                                SubscriptionId="sub-2")])  # fmt: skip
    report, _ = bill(app, raw)
    doc = report.to_json()
    assert doc["totals"] == {"currency": "USD", "cost": "47.66", "amount": "54.81",
                             "margin": "7.15"}  # fmt: skip
    assert sorted(Decimal(c["amount"]) for c in charges(app)) == [
        Decimal("-14.19"),
        Decimal("69.00"),
    ]


def test_min_margin_flags_line_numbers(app: LedgerApplication) -> None:
    book = load_price_book('[defaults]\nmarkup_percent = "2"\nmin_margin_percent = "5"\n'
                           '[[rules]]\nsku_id = "0009"\nmarkup_percent = "20"\n'
                           'min_margin_percent = "5"\n')  # fmt: skip
    raw = csv_bytes([row(), row(SkuId="0009", SubscriptionId="sub-2")])
    report, _ = bill(app, raw, book)
    assert report.to_json()["customers"][0]["below_min_margin"] == [2]


def test_dry_run_posts_nothing_and_reports_the_same(app: LedgerApplication) -> None:
    raw = csv_bytes([row(), row(CustomerId="stranger"), row(ChargeType="bogus")])
    dry, sent = bill(app, raw, dry_run=True)
    assert sent == [] and charges(app) == []
    real, _ = bill(app, raw)
    assert dry.to_json() == real.to_json()
    again, _ = bill(app, raw, dry_run=True)
    assert (again.billed, again.duplicates) == (0, 1)


def test_period_option_and_reconcile_of_the_same_file_matches_every_line(
    app: LedgerApplication,
) -> None:
    raw = csv_bytes([row(), row(ChargeType="removeQuantity", Subtotal="-12.34",
                                SubscriptionId="sub-2"),
                     row(ChargeType="convert", Subtotal="-5.00", SubscriptionId="sub-3"),
                     row(ChargeType="customerCredit", Subtotal="-1.00", SubscriptionId="sub-3"),
                     row(CustomerId="eur-customer", SubscriptionId="sub-4")])  # fmt: skip
    report, _ = bill(app, raw, billing_period="2026-01")
    assert report.billing_period == "2026-01" and report.billed == 5
    result = import_recon_file(app, raw, payment_terms_days=60, billing_period="2026-01")
    doc = result.report.to_json()
    assert doc["matched"] == 5
    assert (doc["missing_in_ledger"], doc["missing_on_invoice"], doc["amount_mismatches"]) == (
        [], [], [],
    )  # fmt: skip
    rows = compute_view(app, "trial-balance", RECORDED.date())
    for currency in ("USD", "EUR"):
        assert sum(Decimal(r["balance"]) for r in rows if r["currency"] == currency) == 0


def test_a_dry_run_finds_what_ingest_would_through_the_recorded_decisions(
    app: LedgerApplication,
) -> None:
    """A dry run (and Kafka) read each charge id's recorded decision (SPEC §3), not the
    accounts: posted charges are duplicates, a line refused before is reported as refused,
    exactly as billing the file again through ingest reports them."""
    raw = csv_bytes([row(), row(SubscriptionId="sub-2"), row(CustomerId="stranger")])
    first, _ = bill(app, raw)
    assert first.billed == 2 and "unknown_customer" in first.not_billed[0]["reason"]
    dry = bill_file(raw, BOOK, lookup_from_registrations(app.registration), None,
                    decided=app.select_decisions)  # fmt: skip
    again, sent = bill(app, raw)
    assert sent and charges(app) and len(charges(app)) == 2
    assert (dry.billed, dry.duplicates) == (again.billed, again.duplicates) == (0, 2)
    assert dry.not_billed == again.not_billed
    assert dry.not_billed[0]["reason"].startswith("refused before (unknown_customer)")


@pytest.mark.parametrize(
    "change",
    [{"amount": "-5.00"}, {"currency": "usd"}, {"charge_end": "2024-12-31"}, {"quantity": 1.5}],
)
def test_a_record_billing_sends_decoded_is_validated_like_its_json(
    app: LedgerApplication, change: dict[str, Any]
) -> None:
    message = {**json.loads(h.charge(TENANT.lower(), "CH-X")), **change}
    value = json.dumps(message)
    as_json = process_records(app, [RawRecord(value, "test", offset=1)])
    decoded = process_records(app, [RawRecord(value, "test", offset=2, decoded=message)])
    [letter] = as_json.dead_letters
    [again] = decoded.dead_letters
    assert (again.code, again.message, again.raw) == (
        letter.code, letter.message, letter.raw,
    )  # fmt: skip


@pytest.mark.parametrize("on_disk", [False, True], ids=["text", "file"])
@pytest.mark.parametrize("shares", [2, 3])
def test_each_share_reads_its_own_lines_as_the_whole_file_numbers_them(
    shares: int, on_disk: bool, tmp_path: Path
) -> None:
    # Quoted newlines (a record on two physical lines), blank lines, identical lines and an
    # unknown ChargeType: the shares' records together are exactly one process's, with the
    # file's line numbers (ledger.app.billing_shards reads them so).
    rows = [row(CustomerId=f"cust-{n % 5}", SubscriptionId=f"sub-{n}") for n in range(40)]
    rows[3]["CustomerName"] = "Contoso\nwith a newline"
    rows[7] = dict(rows[6])  # identical lines: two charges, counted in file order
    rows[9]["ChargeType"] = "somethingNew"
    text = csv_bytes(rows).decode()
    text = text.replace("\r\n", "\r\n\r\n", 3)  # blank lines here and there
    source: str | Path = text
    if on_disk:  # as `ledger bill` reads it: from disk, twice, never held whole
        source = tmp_path / "invoice.csv"
        source.write_bytes(text.encode())
    customers = lookup_from_registrations(lambda _: {"currency": "USD"})

    def records(summary: FileSummary, **options: Any) -> tuple[list[Any], BillingReport]:
        sent: list[Any] = []

        def send(batch: list[RawRecord]) -> IngestCounts:
            sent.extend((r.offset, r.value) for r in batch)
            return IngestCounts(applied=len(batch))

        return sent, bill_text(source, summary, BOOK, customers, send, **options)

    alone, whole = records(scan_file(source))
    split = scan_file(source, shards=shares)
    assert split.owners is not None and set(split.owners) <= {*range(shares), 255}
    parts = [records(split, share=share) for share in range(shares)]
    assert sorted(r for sent, _ in parts for r in sent) == sorted(alone)
    assert len({share for share in split.owners if share != 255}) > 1
    not_billed = sorted(n["line"] for _, report in parts for n in report.not_billed)
    # header 1, three blank lines, a record on two lines: row 9 is on line 2 + 9 + 3 + 1
    assert not_billed == [n["line"] for n in whole.not_billed] == [15]
