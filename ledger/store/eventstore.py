"""Turn LEDGER_DATABASE_URL into the `eventsourcing` persistence settings."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from ledger.store.transcoder import TOPIC as TRANSCODER_TOPIC


class UnsupportedDatabaseUrl(ValueError):
    pass


def eventsourcing_env(database_url: str) -> dict[str, str]:
    """`sqlite:///path`, `postgresql://user:pass@host:port/db` or `memory://` (tests only).
    Every store encodes event state with ledger.store.transcoder (the library's JSON, by
    orjson)."""
    return {"TRANSCODER_TOPIC": TRANSCODER_TOPIC, **_persistence_env(database_url)}


def _persistence_env(database_url: str) -> dict[str, str]:
    if database_url.startswith("memory://"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if database_url.startswith("sqlite:///"):
        path = database_url[len("sqlite:///") :] or ":memory:"
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if database_url.startswith(("postgresql://", "postgres://")):
        url = urlparse(database_url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "ledger",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "ledger"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_CONNECT_TIMEOUT": "3",  # an outage is noticed (and logged) in seconds
            "POSTGRES_PRE_PING": "y",
        }
    raise UnsupportedDatabaseUrl(
        f"LEDGER_DATABASE_URL: {database_url!r} is neither sqlite:///… nor postgresql://…"
    )
