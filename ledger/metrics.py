"""Prometheus counters and gauges shared by the processes and served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "ledger_messages_total", "Ingest messages by outcome", ["outcome"]
)  # applied | duplicate | deadlettered
EVENTS_PUBLISHED = Counter("ledger_events_published_total", "Events published to ledger.events")
PUBLISH_POSITION = Gauge("ledger_publish_position", "Last global position published")
PROJECTION_POSITION = Gauge(
    "ledger_projection_position", "Last global position applied", ["projection"]
)
PROJECTION_LAG = Gauge(
    "ledger_projection_lag_events", "Events in the store not yet in the projection", ["projection"]
)
LOG_HEAD = Gauge("ledger_event_log_head", "Highest global position in the event store")
API_LATENCY = Histogram(
    "ledger_api_request_seconds", "API request latency", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)  # fmt: skip
API_SHED = Counter(
    "ledger_api_shed_total", "API requests answered 503 overloaded (over the in-flight bound)"
)


def count_ingest(applied: int, duplicate: int, deadlettered: int) -> None:
    MESSAGES.labels("applied").inc(applied)
    MESSAGES.labels("duplicate").inc(duplicate)
    MESSAGES.labels("deadlettered").inc(deadlettered)
