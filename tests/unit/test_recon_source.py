"""A reconciliation file read from disk as it goes (ledger.app.recon_source), as `ledger bill`
reads it twice (checked whole, then billed): the same lines and the same errors as its text in
memory, and a file that is not the one checked is refused (FileChanged), never billed in part
silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.app import recon_source
from ledger.app.billing import bill_text, lookup_from_registrations, scan_file
from ledger.app.ingest import IngestCounts, RawRecord
from ledger.app.recon_source import FileChanged, ReconFileError, ReconFileSource, decode
from ledger.domain.pricebook import PriceBook
from tests.unit.test_billing import csv_bytes, row

BOOK = PriceBook.markup("10")
CUSTOMERS = lookup_from_registrations(lambda _: {"currency": "USD"})


def error_of(read: object) -> ReconFileError:
    with pytest.raises(ReconFileError) as caught:
        list(read)  # type: ignore[call-overload]
    return caught.value


@pytest.mark.parametrize("chunk", [1, 5, 64, recon_source.LINES_CHUNK])
@pytest.mark.parametrize("bom", [False, True])
def test_a_byte_not_utf8_is_named_by_line_and_offset_as_in_memory(
    chunk: int, bom: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recon_source, "LINES_CHUNK", chunk)
    raw = (recon_source.BOM if bom else b"") + b"a,b\r\nc,d\r\n\ne,caf\xe9\r\nf,g\r\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(raw)
    with pytest.raises(ReconFileError) as in_memory:
        decode(raw)
    on_disk = error_of(ReconFileSource(path).lines())
    assert str(on_disk) == str(in_memory.value) == "line 4: byte 16 is not UTF-8"
    assert on_disk.line == 4


def test_a_file_that_cannot_be_read_is_one_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.csv"
    error = error_of(ReconFileSource(missing).lines())
    assert str(missing) in str(error) and "cannot be read" in str(error)


def _file(tmp_path: Path, lines: int) -> Path:
    rows = [row(CustomerId=f"cust-{n % 3}", SubscriptionId=f"sub-{n}") for n in range(lines)]
    path = tmp_path / "invoice.csv"
    path.write_bytes(csv_bytes(rows))
    return path


def _bill(path: Path) -> tuple[list[int], Exception | None]:
    """Bill the file as `ledger bill` does (checked, then read again): the lines sent, and
    what stopped it."""
    summary = scan_file(path)
    sent: list[int] = []

    def send(batch: list[RawRecord]) -> IngestCounts:
        sent.extend(r.offset or 0 for r in batch)
        return IngestCounts(applied=len(batch))

    try:
        bill_text(path, summary, BOOK, CUSTOMERS, send)
    except FileChanged as error:
        return sent, error
    return sent, None


def test_an_unchanged_file_is_billed_whole(tmp_path: Path) -> None:
    path = _file(tmp_path, 30)
    sent, error = _bill(path)
    assert error is None and sent == list(range(2, 32))


@pytest.mark.parametrize("change", ["appended", "replaced", "cut"])
def test_a_file_changed_after_its_check_is_refused_before_a_line_is_sent(
    change: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _file(tmp_path, 30)
    original = scan_file

    def scan_then_change(*args: object, **kwargs: object) -> object:
        summary = original(*args, **kwargs)  # type: ignore[arg-type]
        raw = path.read_bytes()
        if change == "appended":
            with path.open("ab") as file:
                file.write(raw.splitlines(keepends=True)[-1])
        elif change == "replaced":  # the same bytes, another file (a new inode)
            path.unlink()
            path.write_bytes(raw)
        else:
            path.write_bytes(raw[: len(raw) // 2].rsplit(b"\r\n", 1)[0] + b"\r\n")
        return summary

    monkeypatch.setattr(f"{__name__}.scan_file", scan_then_change)
    sent, error = _bill(path)
    assert isinstance(error, FileChanged) and sent == []
    assert "not the file that was checked" in str(error) and error.code == "file_changed"


def test_content_changed_under_the_same_size_and_time_is_refused_after_its_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Size, inode and modification time put back as they were: only the SHA-256 of what was
    # read tells, once the last line was read: before the last batch is sent (here the only
    # one; the batches sent before it stand, each line once). The run fails, naming the file.
    path = _file(tmp_path, 30)
    original = scan_file

    def scan_then_change(*args: object, **kwargs: object) -> object:
        summary = original(*args, **kwargs)  # type: ignore[arg-type]
        stat = path.stat()
        raw = path.read_bytes()
        with path.open("r+b") as file:  # the same inode, the same size
            file.write(raw.replace(b"sub-7,", b"sub-8,", 1))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return summary

    monkeypatch.setattr(f"{__name__}.scan_file", scan_then_change)
    sent, error = _bill(path)
    assert isinstance(error, FileChanged) and sent == []
    assert "its content is not the one that was checked" in str(error) and str(path) in str(error)
