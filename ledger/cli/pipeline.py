"""`ledger consume`, `ledger publish`, `ledger project`: the long-running Kafka processes of
the pipeline (the loops themselves are in `consumers/`)."""

from __future__ import annotations

import typer

from ledger.bootstrap import build_app
from ledger.cli.options import CliError
from ledger.config import Settings, check_settings, get_settings
from ledger.process import tune_gc

METRICS_HELP = "Serve this process's Prometheus counters on 127.0.0.1:PORT/metrics."


def consume(
    max_batch: int = typer.Option(1000, min=1, help="Records per poll and transaction."),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Ingest from Kafka (SPEC §3 topics) until SIGTERM/SIGINT; scale out by running more."""
    from consumers.ingest import IngestConsumer
    from consumers.kafka_support import StopFlag, wait_for_store

    settings = _kafka_settings("consume")
    _serve_metrics(metrics_port)
    stop = StopFlag().install()
    ledger = wait_for_store(lambda: build_app(settings), stop, "consume")
    if ledger is not None:  # (None: stopped before the database came back)
        consumer = IngestConsumer(ledger, settings, stop, max_batch=max_batch)
        tune_gc()
        consumer.run()


def publish(
    batch_size: int = typer.Option(2000, min=1),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Publish stored events to `ledger.events` in global order until SIGTERM/SIGINT."""
    from consumers.kafka_support import StopFlag
    from consumers.publish import Publisher

    settings = _kafka_settings("publish")
    _serve_metrics(metrics_port)
    publisher = Publisher(build_app(settings), settings, StopFlag().install(),
                          batch_size=batch_size)  # fmt: skip
    tune_gc()
    publisher.run()


def project(
    max_batch: int = typer.Option(2000, min=1),
    metrics_port: int | None = typer.Option(None, help=METRICS_HELP),
) -> None:
    """Maintain the read models from `ledger.events` until SIGTERM/SIGINT; scale out by
    running more (they share partitions through the consumer group)."""
    from consumers.kafka_support import StopFlag
    from consumers.project import Projector

    _serve_metrics(metrics_port)
    projector = Projector(_kafka_settings("project"), StopFlag().install(), max_batch=max_batch)
    tune_gc()
    projector.run()


def _serve_metrics(port: int | None) -> None:
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def _kafka_settings(command: str) -> Settings:
    settings = get_settings()
    if not settings.kafka_bootstrap:
        raise CliError(f"`ledger {command}` needs LEDGER_KAFKA_BOOTSTRAP (host:port)")
    return check_settings(settings)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.command()(consume)
    app.command()(publish)
    app.command()(project)
