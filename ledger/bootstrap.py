"""Wire the ledger's parts in one place from the settings."""

from __future__ import annotations

from ledger.application import Clock, LedgerApplication, utc_now
from ledger.config import Settings
from ledger.db import Database
from ledger.deadletters import DeadLetterStore
from ledger.policies import load_policies
from ledger.storage import eventsourcing_env


def build_app(settings: Settings, clock: Clock = utc_now) -> LedgerApplication:
    return LedgerApplication(
        eventsourcing_env(settings.database_url),
        clock=clock,
        policies=load_policies(settings.policy_file),
    )


def deadletter_store(settings: Settings) -> DeadLetterStore:
    return DeadLetterStore(Database(settings.database_url))
