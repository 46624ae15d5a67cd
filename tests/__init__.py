"""The test suite: unit/ (no services), integration/ (real PostgreSQL and Kafka), e2e/ (ledger
processes as a user runs them)."""
