"""Key-set pagination with opaque cursors.

A cursor is the urlsafe base64 of `{"s": list name, "k": sort key of the last item served}`:
the next page starts after that key, so rows added or removed meanwhile neither repeat nor
skip the ones that stayed. A cursor from another list, or one that was tampered with, is a
bad request, never a silent restart from the first page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Key = tuple[Any, ...]

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class BadCursor(ValueError):
    """The cursor was not made by this list (code `bad_cursor`)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    def body(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def encode_cursor(scope: str, key: Key) -> str:
    raw = json.dumps({"s": scope, "k": list(key)}, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


INT64_MAX = 2**63 - 1  # what a SQL BIGINT (and SQLite's INTEGER) holds
STREAM_POSITION = range(0, INT64_MAX + 1)
MAX_KEY_TEXT = 1024  # characters of one text part (a cursor is at most 1024 characters)
KeyPart = type | range  # a type, or a range: an int within it


def _valid_part(part: object, kind: KeyPart) -> bool:
    if isinstance(kind, range):
        return type(part) is int and part in kind
    if type(part) is not kind:  # bool is an int to Python, never to a key of ours
        return False
    if isinstance(part, int):  # any int key goes to SQL or compares with one: 64 bits
        return -INT64_MAX <= part <= INT64_MAX
    if isinstance(part, str):  # no lone surrogates (they cannot be encoded back)
        return len(part) <= MAX_KEY_TEXT and _encodable(part)
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_cursor(scope: str, cursor: str, types: Sequence[KeyPart]) -> Key:
    """The key in `cursor`; its parts must have `types`: a type (int parts within 64 bits,
    text parts UTF-8 and at most 1024 characters) or a range an int part must lie in.
    Anything else about it (shape, extra members, type, range) raises BadCursor: a forged
    cursor is a 400, never a 500 from a database that cannot take its values."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise BadCursor("cursor: not a cursor returned by this API") from None
    if not isinstance(document, dict) or document.get("s") != scope:
        raise BadCursor(f"cursor: not a cursor of this list ({scope})")
    key = document.get("k")
    if (
        set(document) != {"s", "k"}
        or not isinstance(key, list)
        or len(key) != len(types)
        or not all(_valid_part(part, kind) for part, kind in zip(key, types, strict=True))
    ):
        raise BadCursor("cursor: not a cursor returned by this API")
    return tuple(key)


def paginate(
    items: Sequence[T],
    key: Callable[[T], Key],
    types: Sequence[KeyPart],
    scope: str,
    limit: int,
    cursor: str | None,
) -> Page[T]:
    """One page of `items` in `key` order, after the cursor's key."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        after = decode_cursor(scope, cursor, types)
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(page, encode_cursor(scope, key(page[-1])) if more else None)
