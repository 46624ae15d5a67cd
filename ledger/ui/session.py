"""Console sessions (SPEC §15): an API token is exchanged once for a signed, expiring cookie.

The cookie (`HttpOnly`, `SameSite=Strict`, `Path=/ui`) carries the token's name, the first 16
hex digits of its SHA-256 (so a token revoked, or re-created under the same name, ends every
session made with it), the time of sign-in (signed by itsdangerous with the time, refused
after `SESSION_SECONDS`) and a random CSRF secret that forms echo back. The role is read from
the tokens file at each request, never from the cookie, so a role change applies at once.

The signing key is a file next to the tokens file (`<tokens file>.console-key`, 32 random
bytes, mode 0600), made on first use: every `ledger serve` worker and host that shares the
tokens file shares the key; replacing it (and restarting) signs everyone out.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ledger.store.tokens import TokenFile, TokenRecord

COOKIE = "ledger_console"
SESSION_SECONDS = 8 * 3600  # a working day; then sign in again
KEY_BYTES = 32
DIGEST_PREFIX = 16  # hex digits of the token's SHA-256 kept in the cookie


class ConsoleKeyError(Exception):
    """The console's signing key can be neither read nor made (fail closed: no sign-in)."""


@dataclass(frozen=True)
class Session:
    """A signed-in user: the token record (current role) and the CSRF secret of the session."""

    record: TokenRecord
    csrf: str

    @property
    def role(self) -> str:
        return self.record.role


def key_path(tokens_file: Path) -> Path:
    return tokens_file.with_name(tokens_file.name + ".console-key")


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (atomically, 0600) when missing. Raises ConsoleKeyError."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = _create_key(path)
    except OSError as error:
        raise ConsoleKeyError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConsoleKeyError(f"{path}: not hexadecimal (delete it to make a new one)") from None
    if len(key) < KEY_BYTES:
        raise ConsoleKeyError(f"{path}: {len(key)} bytes, at least {KEY_BYTES} are needed")
    return key


def _create_key(path: Path) -> str:
    text = secrets.token_hex(KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text + "\n")
        try:
            os.link(temporary, path)  # fails if another worker made it first: use theirs
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        return text
    except OSError as error:
        raise ConsoleKeyError(f"{path}: cannot be created ({error.strerror})") from None
    finally:
        temporary.unlink(missing_ok=True)


class Sessions:
    """Makes and reads session cookies with the key of `tokens`' file."""

    def __init__(self, tokens: TokenFile, max_age: int = SESSION_SECONDS) -> None:
        self.tokens = tokens
        self.max_age = max_age
        self._serializer: URLSafeTimedSerializer | None = None

    def _signer(self) -> URLSafeTimedSerializer:
        if self._serializer is None:  # read lazily: the API runs even if the key cannot be
            key = load_or_create_key(key_path(self.tokens.path))
            self._serializer = URLSafeTimedSerializer(key, salt="ledger-console-session")
        return self._serializer

    def sign_in(self, token: str) -> tuple[TokenRecord, str] | None:
        """(record, cookie value) for a valid API token, None for an unknown one."""
        record = self.tokens.verify(token.strip())
        if record is None:
            return None
        payload = {
            "n": record.name,
            "d": record.sha256[:DIGEST_PREFIX],
            "c": secrets.token_urlsafe(24),
        }
        return record, self._signer().dumps(payload)

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie; None when missing, forged, expired or its token is gone."""
        if not cookie:
            return None
        try:
            payload: Any = self._signer().loads(cookie, max_age=self.max_age)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(payload, dict) or not {"n", "d", "c"} <= payload.keys():
            return None
        for record in self.tokens.records():
            if record.name == payload["n"] and secrets.compare_digest(
                record.sha256[:DIGEST_PREFIX], str(payload["d"])
            ):
                return Session(record, str(payload["c"]))
        return None
