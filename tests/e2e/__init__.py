"""End-to-end tests: `ledger` processes against real Kafka and PostgreSQL."""
