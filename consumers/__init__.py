"""The Kafka loops: ingest topics → events (consume), event log → `ledger.events` (publish),
`ledger.events` → read models (project), and the dead-letter topic."""
