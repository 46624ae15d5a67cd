"""A reconciliation file read from disk as it goes (ledger.app.recon_source), as `ledger bill`
reads it twice (checked whole, then billed): the same lines and the same errors as its text in
memory, and a file that is not the one checked is refused (FileChanged), never billed in part
silently."""

from __future__ import annotations

import os
import time
from dataclasses import replace
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
@pytest.mark.parametrize("ends", ["\r\n", "\r", "\n"], ids=["crlf", "cr", "lf"])
def test_a_byte_not_utf8_is_named_by_line_and_offset_as_in_memory(
    chunk: int, bom: bool, ends: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lines numbered as the csv module numbers them, whatever ends them (\r alone: Excel for
    # Mac's CSV); the offset counts the bytes after the BOM.
    monkeypatch.setattr(recon_source, "LINES_CHUNK", chunk)
    body = "a,b\r\nc,d\r\n\ne,caf\xe9\r\nf,g\r\n".encode("latin-1").replace(b"\r\n", b"\0")
    body = body.replace(b"\n", ends.encode()).replace(b"\0", ends.encode())
    raw = (recon_source.BOM if bom else b"") + body
    offset = 3 + 3 + 5 + 3 * len(ends)  # "a,b", "c,d", "e,caf" and three line ends
    path = tmp_path / "bad.csv"
    path.write_bytes(raw)
    with pytest.raises(ReconFileError) as in_memory:
        decode(raw)
    on_disk = error_of(ReconFileSource(path).lines())
    assert str(on_disk) == str(in_memory.value) == f"line 4: byte {offset} is not UTF-8"
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


def after_a_clock_tick(stat: os.stat_result) -> None:
    """Wait until a write gets file times other than `stat`'s: the kernel stamps them from a
    clock that moves a tick (1-10 ms) at a time, and a download comes later than that."""
    while time.time_ns() < stat.st_ctime_ns + 20_000_000:
        time.sleep(0.005)


def test_a_line_rewritten_in_place_with_the_time_put_back_is_never_billed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cp -p` of a corrected download over the checked file (the same inode, the same size,
    # its modification time set back to the copy's): the file's status-change time (ctime,
    # which no one can set) tells, before the first line is read again. Without it the lines
    # were billed from the new bytes, never checked, until the SHA-256 after the last line.
    path = _file(tmp_path, 2500)  # three batches
    original = scan_file

    def scan_then_change(*args: object, **kwargs: object) -> object:
        summary = original(*args, **kwargs)  # type: ignore[arg-type]
        stat = path.stat()
        raw = path.read_bytes()
        after_a_clock_tick(stat)
        with path.open("r+b") as file:
            file.write(raw.replace(b"sub-7,", b"sub-8,", 1))  # line 9, in the first batch
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return summary

    monkeypatch.setattr(f"{__name__}.scan_file", scan_then_change)
    sent, error = _bill(path)
    assert isinstance(error, FileChanged) and sent == []
    assert "not the file that was checked" in str(error)


def test_content_other_than_checked_under_the_same_status_is_refused_after_its_last_line(
    tmp_path: Path,
) -> None:
    # The last guard (a change no file status shows): the SHA-256 of what was read, compared
    # once the last line was read, before the caller's last batch goes.
    path = _file(tmp_path, 3)
    first = ReconFileSource(path)
    lines = list(first.lines())
    assert first.identity is not None
    other = replace(first.identity, sha256="0" * 64)
    read: list[str] = []
    with pytest.raises(FileChanged) as caught:
        read.extend(ReconFileSource(path, other).lines())
    assert read == lines
    assert "its content is not the one that was checked" in str(caught.value)


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"])
def test_a_file_is_read_a_block_at_a_time_whatever_its_line_endings(
    ending: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CR-only file (Excel for Mac's "Comma Separated Values") has no \n to cut a block
    # after: it was read whole before its first line came (the whole file held, and a change
    # while it was read seen only after its last line). Cut after a \r too (never between a
    # \r and its \n), it is read as the others are: written to while billed, it stops at the
    # next block.
    monkeypatch.setattr(recon_source, "LINES_CHUNK", 256)
    path = tmp_path / "invoice.csv"
    path.write_bytes(csv_bytes([row(SubscriptionId=f"sub-{n}") for n in range(200)]).replace(
        b"\r\n", ending))  # fmt: skip
    checked = ReconFileSource(path)
    total = len(list(checked.lines()))
    read = 0
    with pytest.raises(FileChanged):
        for _ in ReconFileSource(path, checked.identity).lines():
            read += 1
            if read == 1:
                with path.open("ab") as file:
                    file.write(b"more" + ending)
    assert 0 < read < total // 10
