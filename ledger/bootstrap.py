"""Wire the ledger's parts in one place from the settings."""

from __future__ import annotations

from ledger.app.application import LedgerApplication
from ledger.app.base import Clock, utc_now
from ledger.config import Settings, check_settings
from ledger.store.db import Database
from ledger.store.deadletters import DeadLetterStore
from ledger.store.eventstore import eventsourcing_env
from ledger.store.policy_file import load_policies


def build_app(settings: Settings, clock: Clock = utc_now) -> LedgerApplication:
    """The ledger the settings describe. Raises ConfigError (bad database URL or Kafka
    bootstrap) and PolicyError (bad policy file) before anything is opened."""
    check_settings(settings)
    env = eventsourcing_env(settings.database_url)
    if settings.keys_database_url:  # SPEC §13: customers' keys apart (ledger/store/keys.py)
        env["KEYS_DATABASE_URL"] = settings.keys_database_url
    return LedgerApplication(
        env,
        clock=clock,
        policies=load_policies(settings.policy_file),
    )


def deadletter_store(settings: Settings) -> DeadLetterStore:
    check_settings(settings)
    return DeadLetterStore(Database(settings.database_url))
