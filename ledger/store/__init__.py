"""Adapters to storage: the event store settings and recorder, the ledger's own tables
(dead letters, positions, read models), and the files it reads (policies, API tokens)."""
