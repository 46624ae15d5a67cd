"""`ledger serve`: the read API (SPEC §8) under uvicorn."""

from __future__ import annotations

import os

import typer

from ledger.cli.options import fail, usage_error
from ledger.config import get_settings
from ledger.process import usable_cores


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(
        None,
        min=1,
        show_default="one per CPU core, at most 4",
        help="Worker processes (each has its own pool and in-flight bound).",
    ),
    max_in_flight: int = typer.Option(
        None,
        min=1,
        max=10_000,
        show_default="LEDGER_API_MAX_IN_FLIGHT, else 32",
        help="Requests each worker serves at a time; more get 503 overloaded + Retry-After.",
    ),
) -> None:
    """Serve the read API (SPEC §8; OpenAPI at /openapi.json, docs at /docs) until Ctrl-C.

    No access-log line per request (at `LEDGER_LOG_LEVEL=debug` there is one): at hundreds
    of requests a second that is hundreds of unstructured lines a second on stderr;
    `/metrics` has the counts and latencies per route instead."""
    import uvicorn

    from ledger.config import check_settings

    settings = check_settings(get_settings())  # a bad URL: one line, before the banner
    if max_in_flight is not None:  # the workers read their settings from the environment
        os.environ["LEDGER_API_MAX_IN_FLIGHT"] = str(max_in_flight)
        settings = settings.model_copy(update={"api_max_in_flight": max_in_flight})
    workers = workers or default_workers()
    _check_listen(host, port)
    if settings.api_tokens_file.exists():  # a broken tokens file fails closed (missing: 401s)
        from ledger.store import tokens

        try:
            tokens.load(settings.api_tokens_file)
        except tokens.TokenError as error:
            fail(str(error))
    store = "PostgreSQL" if settings.is_postgres else settings.database_url  # no password
    mode = f"projections via Kafka at {settings.kafka_bootstrap}" if settings.kafka_bootstrap \
        else "embedded"  # fmt: skip
    typer.echo(
        f"ledger API on http://{host}:{port} ({store}, {mode}); tokens from "
        f"{settings.api_tokens_file}; OpenAPI at /openapi.json, docs at /docs",
        err=True,
    )
    level = settings.log_level.lower()
    access_log = level == "debug"
    from ledger.api.errors import STORE_UNAVAILABLE

    if workers > 1:
        try:  # fail here in one line, not in each worker after the banner
            _check_store(settings.database_url)
        except STORE_UNAVAILABLE as error:
            fail(f"the database does not answer ({type(error).__name__}: {error})")
        uvicorn.run(
            "ledger.api.app:app_from_environment", factory=True, workers=workers,
            host=host, port=port, log_level=level, access_log=access_log,
        )  # fmt: skip
        return
    from ledger.api import create_app

    try:
        api = create_app(settings)
    except STORE_UNAVAILABLE as error:
        fail(f"the database does not answer ({type(error).__name__}: {error})")
    uvicorn.run(api, host=host, port=port, log_level=level, access_log=access_log)


def default_workers() -> int:
    """One worker process per core, at most 4: one Python process serves on one core (the
    GIL), and the ledger's other processes share the machine."""
    return min(usable_cores(), 4)


def _check_store(url: str) -> None:
    from ledger.store.db import Database

    db = Database(url)
    try:
        db.execute("SELECT 1").fetchone()
    finally:
        db.close()


def _check_listen(host: str, port: int) -> None:
    """Fail in one line when the server could not listen (unknown host, port taken), instead
    of uvicorn's multi-line log and exit code 3."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except socket.gaierror as error:
        usage_error(f"--host: {host!r} is not an address of this machine ({error.strerror})")
    except OSError as error:
        fail(f"cannot listen on {host}:{port} ({error.strerror})")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.command()(serve)
