"""Benchmarks of the ledger against the real services (see README, "Benchmarks")."""
