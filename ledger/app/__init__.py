"""Use cases: what a command does, free of Kafka, database drivers, HTTP and the CLI (those are
passed in as plain callables)."""
