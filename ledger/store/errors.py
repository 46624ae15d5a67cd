"""Persistence errors the edges react to, named for what they mean to the ledger."""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError, OperationalError

# Two writers appended to the same stream at once: the loser retries with fresh state.
ConcurrentWrite = IntegrityError
# The database is unreachable or restarting: wait and retry, never dead-letter.
StoreUnavailable = OperationalError
