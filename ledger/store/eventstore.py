"""Turn LEDGER_DATABASE_URL into the `eventsourcing` persistence settings."""

from __future__ import annotations

from urllib.parse import unquote, urlparse


class UnsupportedDatabaseUrl(ValueError):
    pass


def eventsourcing_env(database_url: str) -> dict[str, str]:
    """`sqlite:///path`, `postgresql://user:pass@host:port/db` or `memory://` (tests only)."""
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
