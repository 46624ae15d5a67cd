"""Wire the ledger's parts in one place from the settings."""

from __future__ import annotations

from ledger.application import Clock, LedgerApplication, utc_now
from ledger.config import Settings, check_settings
from ledger.db import Database
from ledger.deadletters import DeadLetterStore
from ledger.policies import load_policies
from ledger.storage import eventsourcing_env


def build_app(settings: Settings, clock: Clock = utc_now) -> LedgerApplication:
    """The ledger the settings describe. Raises ConfigError (bad database URL or Kafka
    bootstrap) and PolicyError (bad policy file) before anything is opened."""
    check_settings(settings)
    return LedgerApplication(
        eventsourcing_env(settings.database_url),
        clock=clock,
        policies=load_policies(settings.policy_file),
    )


def deadletter_store(settings: Settings) -> DeadLetterStore:
    check_settings(settings)
    return DeadLetterStore(Database(settings.database_url))
