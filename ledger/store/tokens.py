"""API bearer tokens: the TOML file of `LEDGER_API_TOKENS_FILE` (`[[tokens]]` with `name`,
`role`, `sha256`), creation, revocation and constant-time verification.

Only a token's SHA-256 is ever stored; the token itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROLES = ("reader", "auditor", "admin")
# What each role may do: `reader` reads views, `auditor` also event histories, `admin` all.
RANK = {role: rank for rank, role in enumerate(ROLES)}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
TOKEN_PREFIX = "lgr_"  # lets secret scanners and humans recognise a ledger token


class TokenError(Exception):
    """A token file or command problem, in words that name what is wrong."""


class UnknownRole(TokenError):
    pass


class InvalidName(TokenError):
    pass


class DuplicateName(TokenError):
    pass


class UnknownName(TokenError):
    pass


class TokenFileError(TokenError):
    pass


@dataclass(frozen=True)
class TokenRecord:
    name: str
    role: str
    sha256: str
    created_at: str | None = None

    def allows(self, role: str) -> bool:
        """True when this token's role includes `role` (admin ⊇ auditor ⊇ reader)."""
        return RANK[self.role] >= RANK[role]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UnknownRole(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(
            f"name: {name!r} must be 1-64 characters of letters, digits and . _ @ : - "
            "(starting with a letter or digit)"
        )
    return name


def load(path: Path) -> list[TokenRecord]:
    """The tokens in the file; none when it does not exist. Raises TokenFileError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise TokenFileError(f"{path}: cannot be read ({error.strerror})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TokenFileError(f"{path}: not valid TOML ({error})") from None
    entries = document.get("tokens", [])
    if not isinstance(entries, list):
        raise TokenFileError(f"{path}: `tokens` must be an array of tables ([[tokens]])")
    records: list[TokenRecord] = []
    for number, entry in enumerate(entries, start=1):
        records.append(_record(path, number, entry))
    names = [r.name for r in records]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TokenFileError(f"{path}: token name {duplicates[0]!r} appears more than once")
    return records


def _record(path: Path, number: int, entry: object) -> TokenRecord:
    where = f"{path}: token #{number}"
    if not isinstance(entry, dict):
        raise TokenFileError(f"{where} is not a table")
    name, role, sha = entry.get("name"), entry.get("role"), entry.get("sha256")
    if not isinstance(name, str) or not name:
        raise TokenFileError(f"{where}: name is missing")
    if role not in ROLES:
        raise TokenFileError(f"{where} ({name}): role {role!r} is not one of {', '.join(ROLES)}")
    if not isinstance(sha, str) or not SHA256_PATTERN.fullmatch(sha):
        raise TokenFileError(f"{where} ({name}): sha256 must be 64 lowercase hex digits")
    created = entry.get("created_at")
    return TokenRecord(name, str(role), sha, str(created) if created is not None else None)


def save(path: Path, records: list[TokenRecord]) -> None:
    """Write the file atomically, readable by its owner only."""
    lines = [
        "# API bearer tokens of the ledger (`ledger tokens create|list|revoke`).",
        "# Only SHA-256 digests are kept here; the tokens themselves were shown once.",
    ]
    for record in records:
        lines += ["", "[[tokens]]"]
        # JSON string escapes are valid TOML basic-string escapes.
        lines.append(f"name = {json.dumps(record.name)}")
        lines.append(f"role = {json.dumps(record.role)}")
        lines.append(f"sha256 = {json.dumps(record.sha256)}")
        if record.created_at:
            lines.append(f"created_at = {json.dumps(record.created_at)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def create(path: Path, name: str, role: str, *, now: datetime | None = None) -> str:
    """Add a token; returns it (the only time it exists outside the caller's hands)."""
    check_role(role)
    check_name(name)
    records = load(path)
    if any(r.name == name for r in records):
        raise DuplicateName(f"name: a token named {name!r} already exists (revoke it first)")
    token = new_token()
    created = (now or datetime.now(UTC)).replace(microsecond=0).isoformat()
    save(path, [*records, TokenRecord(name, role, digest(token), created)])
    return token


def revoke(path: Path, name: str) -> TokenRecord:
    records = load(path)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        raise UnknownName(f"name: there is no token named {name!r} in {path}")
    save(path, kept)
    return next(r for r in records if r.name == name)


def verify(records: list[TokenRecord], token: str) -> TokenRecord | None:
    """The record of `token`, or None. Compares digests in constant time and always looks
    at every record, so the time taken says nothing about which (if any) matched."""
    presented = digest(token)
    found: TokenRecord | None = None
    for record in records:
        if hmac.compare_digest(record.sha256, presented):
            found = record
    return found


class TokenFile:
    """The tokens of one file, re-read whenever the file changes (a revoke applies to a
    running server at its next request). A file that cannot be read authorises nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._records: list[TokenRecord] = []
        self.error: str | None = None

    def records(self) -> list[TokenRecord]:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            try:
                self._records, self.error = load(self.path), None
            except TokenFileError as error:
                self._records, self.error = [], str(error)  # fail closed
            self._stamp = stamp
        return self._records

    def verify(self, token: str) -> TokenRecord | None:
        return verify(self.records(), token)
