"""The one settings object: environment variables (LEDGER_*) and an optional ledger.toml."""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", toml_file="ledger.toml", extra="ignore")

    database_url: str = "sqlite:///./ledger.db"
    kafka_bootstrap: str | None = None
    policy_file: Path | None = None
    price_book: Path | None = None  # `ledger bill partner-center` (SPEC §10)
    api_tokens_file: Path = Path("./ledger-tokens.toml")
    log_format: str = Field(default="auto", description="json, console or auto (tty)")
    log_level: str = "info"
    # `ledger serve`: requests one server process serves at a time; more get 503 overloaded
    # with Retry-After (ledger/api/shedding.py), never a queue that grows without bound.
    api_max_in_flight: int = Field(default=32, ge=1, le=10_000)

    topic_customers: str = "billing.customers"
    topic_charges: str = "billing.charges"
    topic_payments: str = "billing.payments"
    topic_support: str = "billing.support"
    topic_deadletter: str = "billing.deadletter"
    topic_events: str = "ledger.events"
    consumer_group_ingest: str = "ledger-ingest"
    consumer_group_project: str = "ledger-project"
    # Microsoft's payment terms for the partner (SPEC §11: net 60 unless agreed otherwise):
    # the due date of a reconciled invoice. A negative value is refused at start.
    microsoft_payment_terms_days: int = Field(default=60, ge=0, le=365)
    # SPEC §14: documents and their delivery (ledger/documents).
    partner_profile: Path | None = None
    templates_dir: Path | None = None
    smtp_url: str | None = None
    mail_from: str | None = None
    # SPEC §13: the secret authenticating audit checkpoints (hex, at least 32 bytes); held
    # outside the database. Read through `audit_key_bytes()`, which refuses a malformed one.
    audit_key: SecretStr | None = None
    topic_checkpoints: str = "ledger.checkpoints"
    # SPEC §13: where customers' data keys are kept (table customer_keys); unset: the
    # ledger's own database. Another database keeps keys apart from events and their backups.
    keys_database_url: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def ingest_topics(self) -> list[str]:
        return [self.topic_customers, self.topic_charges, self.topic_payments, self.topic_support]

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def is_embedded(self) -> bool:
        return not self.kafka_bootstrap

    def audit_key_bytes(self) -> bytes | None:
        """LEDGER_AUDIT_KEY decoded: None when unset; ConfigError (fail closed) when it is not
        hex or shorter than 32 bytes (64 hex digits); never "no key" for a bad key."""
        if self.audit_key is None:
            return None
        text = self.audit_key.get_secret_value().strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ConfigError("LEDGER_AUDIT_KEY: not hexadecimal (expected at least 64 hex "
                              "digits, e.g. from `openssl rand -hex 32`)") from None  # fmt: skip
        if len(key) < 32:
            raise ConfigError(f"LEDGER_AUDIT_KEY: {len(key)} bytes; at least 32 are needed "
                              "(64 hex digits)")  # fmt: skip
        return key

    def store_description(self) -> str:
        store = "PostgreSQL" if self.is_postgres else "SQLite"
        delivery = f"Kafka at {self.kafka_bootstrap}" if self.kafka_bootstrap else "in-process"
        return f"{store} event store ({redacted(self.database_url)}), {delivery} delivery"


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class ConfigError(Exception):
    """A configuration mistake (SPEC §9): one line on stderr, exit 1; nothing is done."""


_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")


def check_database_url(url: str) -> None:
    """Fail closed, before any store is opened, on a LEDGER_DATABASE_URL the ledger cannot use:
    an unsupported scheme, a SQLite file whose directory does not exist, a path that is a
    directory, or an existing file that is not a SQLite database. Raises ConfigError naming
    the variable and the reason (the URL without its password)."""
    shown = redacted(url)
    if url.startswith("memory://") or url in ("sqlite:///", "sqlite:///:memory:"):
        return
    if url.startswith(("postgresql://", "postgres://")):
        return
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            f"LEDGER_DATABASE_URL: {shown!r} is neither sqlite:///PATH nor postgresql://…"
        )
    path = Path(url[len("sqlite:///") :])
    if path.is_dir():
        raise ConfigError(f"LEDGER_DATABASE_URL: {str(path)!r} is a directory, not a file")
    if not path.parent.is_dir():
        raise ConfigError(
            f"LEDGER_DATABASE_URL: the directory {str(path.parent)!r} of {str(path)!r} does "
            "not exist"
        )
    if not path.exists():
        return  # a new ledger: created on first use
    # Through SQLite itself, never open()/close() of our own: closing any other descriptor of
    # the file drops every POSIX lock this process holds on it (SQLite's "How To Corrupt An
    # SQLite Database File" §2.2), and a process may already have the store open.
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.5)
        try:
            probe.execute("PRAGMA schema_version").fetchone()
        finally:
            probe.close()
    except sqlite3.DatabaseError as error:
        if "locked" in str(error) or "busy" in str(error):
            return  # another connection is writing it: a SQLite database
        if "not a database" in str(error):
            raise ConfigError(
                f"LEDGER_DATABASE_URL: {str(path)!r} is not a SQLite database"
            ) from None
        raise ConfigError(f"LEDGER_DATABASE_URL: {str(path)!r} cannot be read ({error})") from None


def check_kafka_bootstrap(bootstrap: str | None) -> None:
    """LEDGER_KAFKA_BOOTSTRAP, when set, is host:port[,host:port…] (ports 1-65535)."""
    if bootstrap is None:
        return
    servers = [part.strip() for part in bootstrap.split(",")]
    for server in servers:
        found = _HOST_PORT.match(server)
        if not found or not 1 <= int(found.group(2)) <= 65535:
            raise ConfigError(
                f"LEDGER_KAFKA_BOOTSTRAP: {server!r} is not host:port (e.g. localhost:9092)"
            )


def check_settings(settings: Settings) -> Settings:
    """The settings a command is about to use, checked (ConfigError)."""
    check_database_url(settings.database_url)
    check_kafka_bootstrap(settings.kafka_bootstrap)
    if settings.keys_database_url is not None:
        check_keys_database_url(settings.keys_database_url)
    return settings


def check_keys_database_url(url: str) -> None:
    """LEDGER_KEYS_DATABASE_URL as LEDGER_DATABASE_URL, but never in memory: keys that
    vanish with a connection would be an erasure of every customer. Raises ConfigError."""
    if url.startswith("memory://") or url in ("sqlite:///", "sqlite:///:memory:"):
        raise ConfigError(f"LEDGER_KEYS_DATABASE_URL: {redacted(url)!r} is in memory; keys "
                          "need a database file or server")  # fmt: skip
    try:
        check_database_url(url)
    except ConfigError as error:
        raise ConfigError(
            str(error).replace("LEDGER_DATABASE_URL", "LEDGER_KEYS_DATABASE_URL")
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
