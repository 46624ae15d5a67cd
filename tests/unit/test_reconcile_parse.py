"""Reading Partner Center reconciliation files: what is tolerated, and the one clear error
(line and column) for what is not."""

from __future__ import annotations

import csv
import io
import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.app import recon_source
from ledger.app.recon_source import ReconFileSource
from ledger.app.reconcile import ReconFileError, charge_type_of, parse_recon_file
from tests.fixtures.recon_gen import COLUMNS

BASE = {
    "PartnerId": "p-1", "CustomerId": "contoso", "CustomerName": "Contoso, Ltd.",
    "InvoiceNumber": "G000000001", "ProductId": "CFQ7TTC0LH18", "SkuId": "0001",
    "SkuName": 'Microsoft 365 "Business" Basic', "ChargeType": "cycleCharge",
    "UnitPrice": "6.00", "Quantity": "10", "Subtotal": "60.00", "TaxTotal": "4.80",
    "Total": "64.80", "Currency": "USD", "SubscriptionId": "sub-1",
    "ChargeStartDate": "1/1/2025", "ChargeEndDate": "1/31/2025",
}  # fmt: skip


def make(rows: list[dict[str, str]], columns: list[str] | None = None, *, bom: bool = False,
         newline: str = "\r\n") -> bytes:  # fmt: skip
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or COLUMNS, restval="",
                            lineterminator=newline, extrasaction="ignore")  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    data = out.getvalue().encode()
    return b"\xef\xbb\xbf" + data if bom else data


def line(**changes: str) -> dict[str, str]:
    return {**BASE, **changes}


def error_of(raw: bytes) -> ReconFileError:
    with pytest.raises(ReconFileError) as caught:
        parse_recon_file(raw)
    return caught.value


# ---- tolerated ------------------------------------------------------------------------------


def test_reads_microsofts_columns_in_any_order_with_bom_quotes_and_extra_columns() -> None:
    columns = ["Surprise", *reversed(COLUMNS), "AnotherNewColumn"]
    rows = [
        line(),
        line(
            SubscriptionId="sub-2",
            Subtotal="-12.34",
            ChargeType="removeQuantity",
            ChargeStartDate="2025-01-15",
            ChargeEndDate="2025-01-31T00:00:00Z",
        ),
    ]
    recon = parse_recon_file(make(rows, columns, bom=True))

    assert (recon.invoice_number, recon.currency, len(recon.lines)) == ("G000000001", "USD", 2)
    first, second = recon.lines
    assert (first.line, first.customer_id, first.subscription_id) == (2, "contoso", "sub-1")
    assert (first.charge_start, first.charge_end) == (date(2025, 1, 1), date(2025, 1, 31))
    assert (first.ms_charge_type, first.charge_type, first.subtotal) == (
        "cycleCharge", "cycle", Decimal("60.00"),
    )  # fmt: skip
    assert (second.charge_type, second.subtotal) == ("remove_quantity", Decimal("-12.34"))
    assert second.charge_start == date(2025, 1, 15)
    assert recon.total == Decimal("47.66")
    assert recon.billing_period() == "2025-01"


def test_only_the_matching_columns_are_required() -> None:
    minimal = ["InvoiceNumber", "CustomerId", "SubscriptionId", "ChargeType", "ChargeStartDate",
               "ChargeEndDate", "Subtotal", "Currency"]  # fmt: skip
    recon = parse_recon_file(make([line()], minimal, newline="\n"))
    assert recon.lines[0].product_id == ""


def test_quoted_newlines_keep_line_numbers_of_the_file() -> None:
    rows = [line(CustomerName="Contoso\nwith a newline"), line(Subtotal="oops")]
    assert error_of(make(rows)).line == 4  # header 1, the 2-line record 2-3, then 4


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, recon_source.LINES_CHUNK])
def test_lines_are_split_as_the_csv_module_reads_them(
    chunk: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # \\r\\n, \\r and \\n end a line; str.splitlines' other breaks (\\x1c, \\x85, \\u2028…)
    # do not, wherever the text (or the file on disk, in bytes) is cut into chunks.
    monkeypatch.setattr(recon_source, "LINES_CHUNK", chunk)
    cells = ["a", "bc", ",", '"', "\r", "\n", "\r\n", "\x85", "\u2028", "\x1c", "\v", "é"]
    rng = random.Random(7)
    path = tmp_path / "lines.csv"
    for number in range(500):
        text = "".join(rng.choice(cells) for _ in range(rng.randint(0, 30)))
        expected = io.StringIO(text, newline="").readlines()
        assert list(recon_source.text_lines(text)) == expected, repr(text)
        path.write_bytes((recon_source.BOM if number % 2 else b"") + text.encode())
        assert list(ReconFileSource(path).lines()) == expected, repr(text)


def test_blank_lines_are_skipped() -> None:
    raw = make([line()]) + b"\r\n\r\n"
    assert len(parse_recon_file(raw).lines) == 1


@pytest.mark.parametrize(
    ("microsoft", "subtotal", "ours"),
    [
        # SPEC §10's mapping of Microsoft's new-commerce ChargeType values
        ("new", "1", "new"), ("New", "1", "new"), ("addQuantity", "1", "add_quantity"),
        ("Add quantity", "1", "add_quantity"), ("purchase", "1", "new"), ("renew", "1", "renew"),
        ("Renew", "1", "renew"), ("cycleCharge", "1", "cycle"), ("Cycle charge", "1", "cycle"),
        ("usage", "1", "usage"), ("oneTime", "1", "one_time"),
        ("cancelImmediate", "-1", "cancel_refund"), ("Cancel immediate", "-1", "cancel_refund"),
        ("cancel", "-1", "cancel_refund"),
        ("removeQuantity", "-1", "remove_quantity"), ("refund", "-1", "cancel_refund"),
        ("convert", "5", "convert"), ("convert", "-5", "convert"),
        ("customerCredit", "-5", "customer_credit"), ("CUSTOMERCREDIT", "-5", "customer_credit"),
        ("somethingNew", "1", None),
    ],
)  # fmt: skip
def test_charge_type_mapping(microsoft: str, subtotal: str, ours: str | None) -> None:
    assert charge_type_of(microsoft, Decimal(subtotal)) == ours


# ---- malformed: one clear error, line and column --------------------------------------------


def test_missing_required_column() -> None:
    columns = [c for c in COLUMNS if c != "SubscriptionId"]
    error = error_of(make([line()], columns))
    assert (error.line, error.column) == (1, "SubscriptionId")
    assert str(error).startswith("line 1, column SubscriptionId: required column missing")


@pytest.mark.parametrize(
    ("changes", "column", "says"),
    [
        ({"Subtotal": "12,50"}, "Subtotal", "'12,50' is not a number"),
        ({"Subtotal": ""}, "Subtotal", "is empty"),
        ({"Subtotal": "1.005"}, "Subtotal", "has 3 decimals, at most 2 for USD"),
        ({"ChargeStartDate": "2025-13-01"}, "ChargeStartDate", "is not a date"),
        ({"ChargeEndDate": "31/1/2025"}, "ChargeEndDate", "is not a date"),
        ({"ChargeEndDate": "12/31/2024"}, "ChargeEndDate", "before ChargeStartDate"),
        ({"Currency": "US$"}, "Currency", "not an ISO 4217 code"),
        ({"Currency": "EUR"}, "Currency", "differs from the file's currency USD"),
        ({"InvoiceNumber": "G000000002"}, "InvoiceNumber", "one invoice per file"),
        ({"CustomerId": " "}, "CustomerId", "is empty"),
    ],
)  # fmt: skip
def test_bad_value_names_line_and_column(changes: dict[str, str], column: str, says: str) -> None:
    raw = make([line(), line(SubscriptionId="sub-2"), line(SubscriptionId="sub-3", **changes)])
    error = error_of(raw)
    assert (error.line, error.column) == (4, column)
    assert str(error).startswith(f"line 4, column {column}: ")
    assert says in str(error)


def test_row_with_too_many_fields() -> None:
    raw = make([line()]) + make([line(Subtotal="1,000.00")]).split(b"\r\n", 1)[1].replace(
        b'"1,000.00"', b"1,000.00"
    )
    error = error_of(raw)
    assert error.line == 3 and "fields, the header has" in str(error)


def test_empty_and_header_only_files() -> None:
    assert "empty" in str(error_of(b""))
    assert "no lines" in str(error_of(make([])))


def test_not_utf8() -> None:
    raw = make([line(), line(CustomerName="Caf\u00e9")]).replace("é".encode(), b"\xe9")
    error = error_of(raw)
    assert error.line == 3 and "not UTF-8" in str(error)
