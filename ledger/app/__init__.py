"""The application layer: the `eventsourcing` Application and its use cases (ingest batching,
invoice and collections runs, billing from Partner Center files, paying Microsoft and the
partner's account with Microsoft, audit). No Kafka, psycopg, HTTP or CLI here (those are passed
in as plain callables)."""
