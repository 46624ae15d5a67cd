"""The application layer: the `eventsourcing` Application and its use cases (ingest batching,
invoice and collections runs, paying Microsoft, audit). No Kafka, psycopg, HTTP or CLI here."""
