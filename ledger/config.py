"""The one settings object: environment variables (LEDGER_*) and an optional ledger.toml."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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

    topic_customers: str = "billing.customers"
    topic_charges: str = "billing.charges"
    topic_payments: str = "billing.payments"
    topic_support: str = "billing.support"
    topic_deadletter: str = "billing.deadletter"
    topic_events: str = "ledger.events"
    consumer_group_ingest: str = "ledger-ingest"
    consumer_group_project: str = "ledger-project"
    microsoft_payment_terms_days: int = 60

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

    def store_description(self) -> str:
        store = "PostgreSQL" if self.is_postgres else "SQLite"
        delivery = f"Kafka at {self.kafka_bootstrap}" if self.kafka_bootstrap else "in-process"
        return f"{store} event store ({redacted(self.database_url)}), {delivery} delivery"


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
