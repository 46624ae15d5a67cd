"""Where the lines of a reconciliation file come from (SPEC §7, §10): its text in memory, or
the file on disk read a megabyte at a time, so billing a file never holds it whole (a
100,000-line Partner Center file is ~50 MB of text).

Both give the lines with their endings (\\r\\n, \\r or \\n), as io.StringIO(text, newline="")
gives them to the csv module, a UTF-8 BOM dropped, and the same ReconFileError for a byte that
is not UTF-8 (naming its line). A file on disk is billed in two passes (checked whole, then
billed): the second pass refuses a file that is not the one the first pass checked
(FileChanged).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.domain.errors import LedgerError


class ReconFileError(LedgerError):
    """The reconciliation file cannot be read; nothing was recorded."""

    code = "malformed_file"

    def __init__(self, message: str, *, line: int | None = None, column: str | None = None):
        where = ", ".join(
            part
            for part in (f"line {line}" if line else "", f"column {column}" if column else "")
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, field=column)
        self.line = line
        self.column = column


class FileChanged(ReconFileError):
    """The file on disk is not the one that was checked: written to, replaced or cut since.
    Raised before its first line is read again when its size, times or inode differ, else
    as soon as a block read shows it, at the latest after its last line (its SHA-256). The
    batches sent before stand (each line once); bill the file again once it is final."""

    code = "file_changed"


BOM = b"\xef\xbb\xbf"
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# The line breaks str.splitlines knows besides \r and \n: a chunk holding none of them is
# split in C, as the regex would split it (each looked for with `in`: a memchr, where a
# regex character class reads the text at ~5 ns a character).
_OTHER_BREAKS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"
LINES_CHUNK = 1 << 20  # characters (text) or bytes (a file) split at a time


def decode(raw: bytes) -> str:
    """The text of a whole file (UTF-8, a BOM dropped). Raises ReconFileError naming the line
    of the first byte that is not UTF-8 (bytes counted after the BOM)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_ends(raw[: exc.start + (3 if raw.startswith(BOM) else 0)]) + 1
        raise ReconFileError(f"byte {exc.start} is not UTF-8", line=line) from None


def _line_ends(raw: bytes) -> int:
    """The line ends in `raw` as the csv module counts them: \r\n, \r or \n (a file saved
    with \r alone, as Excel for Mac's CSV, is numbered like the others)."""
    return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")


def _split(chunk: str) -> list[str]:
    """The lines of a chunk that ends after a \\n (or at the end of the file)."""
    if not any(other in chunk for other in _OTHER_BREAKS):
        return chunk.splitlines(keepends=True)
    return _LINE_RE.findall(chunk)


def text_lines(text: str) -> Iterator[str]:
    """The lines of `text`, one at a time: what io.StringIO(text, newline="") gives the csv
    module, without its copy of the whole text at 4 bytes a character (200 MB for a
    100,000-line file). A megabyte at a time, cut after a \\n, split by str.splitlines when it
    holds no other break it knows (~3 µs a line less)."""
    start, size = 0, len(text)
    while start < size:
        end = text.rfind("\n", start, start + LINES_CHUNK) + 1 if start + LINES_CHUNK < size \
            else size  # fmt: skip
        if end <= start:  # no \n in a whole chunk: up to the next one
            end = text.find("\n", start + LINES_CHUNK) + 1 or size
        yield from _split(text[start:end])
        start = end


@dataclass(frozen=True)
class FileIdentity:
    """What tells a file on disk from another, or from itself changed: where it is (device,
    inode), its size in bytes, its modification and status-change times (ns) and the SHA-256
    of its bytes. The status-change time (ctime) is the one a writer cannot put back (`cp -p`
    or `touch -r` over the file restores its modification time, not its ctime)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    def same_file(self, stat: os.stat_result) -> bool:
        return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns) == (
            self.device, self.inode, self.size, self.mtime_ns, self.ctime_ns,
        )  # fmt: skip


class ReconFileSource:
    """A reconciliation file on disk, read as lines a megabyte at a time. With `expected`
    (the identity of an earlier pass), raises FileChanged when the file is not that one.
    `identity` is the file's once every line was read."""

    def __init__(self, path: Path, expected: FileIdentity | None = None) -> None:
        self.path = path
        self.expected = expected
        self.identity: FileIdentity | None = None

    def _changed(self, why: str) -> FileChanged:
        if self.expected is None:  # the check: nothing was sent
            return FileChanged(f"{self.path}: {why}: nothing billed; bill it once it is final")
        return FileChanged(
            f"{self.path}: {why}: read no further (batches sent before stand; billing the"
            " file again once it is final bills each line once)"
        )

    def lines(self) -> Iterator[str]:
        """The file's lines (see the module docstring). Raises ReconFileError for a byte that
        is not UTF-8, FileChanged (see the class)."""
        digest = hashlib.sha256()
        try:
            opened = self.path.open("rb")
        except OSError as exc:
            raise ReconFileError(f"{self.path}: cannot be read ({exc.strerror})") from None
        with opened as file:
            at_open = os.fstat(file.fileno())
            if self.expected is not None and not self.expected.same_file(at_open):
                raise self._changed("not the file that was checked (written to or replaced since)")
            head = file.read(len(BOM))
            digest.update(head)
            carry, offset, newlines = b"" if head == BOM else head, 0, 0
            while True:
                block = file.read(LINES_CHUNK)
                digest.update(block)
                data = carry + block
                if block:
                    # After the last \n, else (a CR-only file) after a \r that is not the
                    # last byte (its \n may come next); none yet: read on.
                    cut = data.rfind(b"\n") + 1 or data.rfind(b"\r", 0, len(data) - 1) + 1
                    if cut == 0:
                        carry = data
                        continue
                    if self.expected is not None and not self.expected.same_file(
                        os.fstat(file.fileno())
                    ):
                        raise self._changed("written to since it was checked")
                else:
                    cut = len(data)
                chunk, carry = data[:cut], data[cut:]
                try:
                    text = chunk.decode("utf-8")
                except UnicodeDecodeError as exc:
                    line = newlines + _line_ends(chunk[: exc.start]) + 1
                    raise ReconFileError(f"byte {offset + exc.start} is not UTF-8",
                                         line=line) from None  # fmt: skip
                newlines += _line_ends(chunk)  # a chunk never ends between \r and \n
                offset += len(chunk)
                yield from _split(text)
                if not block:
                    break
            at_end = os.fstat(file.fileno())
        identity = FileIdentity(at_end.st_dev, at_end.st_ino, at_end.st_size, at_end.st_mtime_ns,
                                at_end.st_ctime_ns, digest.hexdigest())  # fmt: skip
        if self.expected is not None and identity != self.expected:
            raise self._changed("its content is not the one that was checked")
        if not identity.same_file(at_open):
            raise self._changed("written to while it was read")
        self.identity = identity


__all__ = [
    "FileChanged",
    "FileIdentity",
    "ReconFileError",
    "ReconFileSource",
    "decode",
    "text_lines",
]
