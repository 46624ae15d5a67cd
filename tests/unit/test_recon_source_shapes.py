"""Awkward Partner Center files read from disk as `ledger bill` reads them (ledger.app
.recon_source, blocks made tiny so that every line, quoted newline and line ending falls
across a block boundary): a BOM, CRLF, CR-only and LF endings, quoted fields holding newlines,
no final newline, blank lines. Billed from the path, in one process or as shares (what the
workers bill), they send exactly the charges their text billed in memory; a header-only or
empty file, and a bad byte on the last line, are the errors the text gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.app import recon_source
from ledger.app.billing import FileSummary, bill_text, lookup_from_registrations, scan_file
from ledger.app.ingest import IngestCounts, RawRecord
from ledger.app.recon_source import ReconFileError
from ledger.domain.pricebook import PriceBook
from tests.unit.test_billing import csv_bytes, row

BOOK = PriceBook.markup("10")
CUSTOMERS = lookup_from_registrations(lambda _: {"currency": "USD"})


def _rows() -> list[dict[str, str]]:
    rows = []
    for n in range(23):
        description = f"seat {n}" if n % 3 else f'seats "{n}",\nline two\r\nline three'
        rows.append(row(CustomerId=f"cust-{n % 5}", SubscriptionId=f"sub-{n}",
                        SubscriptionDescription=description,
                        Subtotal=f"{n}.{n % 10}0", Quantity=str(n + 1)))  # fmt: skip
    return rows


def _shapes() -> dict[str, bytes]:
    crlf = csv_bytes(_rows())
    header, body = crlf.split(b"\r\n", 1)
    lf = crlf.replace(b"\r\n", b"\n")
    return {
        "bom_crlf": recon_source.BOM + crlf,
        "lf_no_final_newline": lf.rstrip(b"\n"),
        "cr_only": crlf.replace(b"\r\n", b"\r"),
        "blank_lines": header + b"\r\n\r\n" + body + b"\r\n\r\n",
    }


def _bill(source: str | Path, summary: FileSummary, **options: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def send(batch: list[RawRecord]) -> IngestCounts:
        sent.extend(orjson.loads(record.value) for record in batch)
        return IngestCounts(applied=len(batch))

    bill_text(source, summary, BOOK, CUSTOMERS, send, **options)
    return sent


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("shape", list(_shapes()))
def test_a_file_on_disk_bills_what_its_text_bills_in_one_process_and_in_shares(
    shape: str, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recon_source, "LINES_CHUNK", chunk)
    raw = _shapes()[shape]
    path = tmp_path / "invoice.csv"
    path.write_bytes(raw)
    text = recon_source.decode(raw)

    in_memory = _bill(text, scan_file(text))
    assert len(in_memory) == 23
    assert _bill(path, scan_file(path)) == in_memory
    summary = scan_file(path, shards=3)
    shares = [_bill(path, summary, share=share) for share in range(3)]
    assert sorted((c for part in shares for c in part), key=lambda c: c["charge_id"]) == sorted(
        in_memory, key=lambda c: c["charge_id"]
    )
    assert all(shares)  # five customers over three shares: none is empty


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "line 1: the file is empty"),
        (recon_source.BOM, "line 1: the file is empty"),
        (
            csv_bytes([row()]).split(b"\r\n")[0] + b"\r\n",
            "line 2: the file has a header but no lines",
        ),
    ],
    ids=["empty", "bom_only", "header_only"],
)
def test_an_empty_or_header_only_file_is_refused_as_its_text_is(
    raw: bytes, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "invoice.csv"
    path.write_bytes(raw)
    for source in (recon_source.decode(raw), path):
        with pytest.raises(ReconFileError) as caught:
            scan_file(source)
        assert str(caught.value) == message


@pytest.mark.parametrize("chunk", [1, 64, 1 << 20])
def test_a_bad_byte_on_a_last_line_without_newline_is_named_before_anything_is_sent(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recon_source, "LINES_CHUNK", chunk)
    raw = csv_bytes([row(SubscriptionId=f"sub-{n}") for n in range(4)]).rstrip(b"\r\n") + b"\xff"
    path = tmp_path / "invoice.csv"
    path.write_bytes(raw)
    with pytest.raises(ReconFileError) as caught:
        scan_file(path)
    assert str(caught.value) == f"line 5: byte {len(raw) - 1} is not UTF-8"
