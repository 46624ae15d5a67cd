"""`ledger serve` and `ledger tokens …`: the read API."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import typer

from ledger.config import get_settings

tokens_app = typer.Typer(
    help="API bearer tokens (LEDGER_API_TOKENS_FILE): only their SHA-256 is stored."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `ledger` app."""
    app.command()(serve)
    app.add_typer(tokens_app, name="tokens")


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Worker processes (each has its own pool)."),
) -> None:
    """Serve the read API (SPEC §8; OpenAPI at /openapi.json, docs at /docs) until Ctrl-C."""
    import uvicorn

    from ledger.config import check_settings

    settings = check_settings(get_settings())  # a bad URL: one line, before the banner
    _check_listen(host, port)
    if settings.api_tokens_file.exists():  # a broken tokens file fails closed (missing: 401s)
        from ledger.store import tokens

        try:
            tokens.load(settings.api_tokens_file)
        except tokens.TokenError as error:
            _fail(str(error))
    store = "PostgreSQL" if settings.is_postgres else settings.database_url  # no password
    mode = f"projections via Kafka at {settings.kafka_bootstrap}" if settings.kafka_bootstrap \
        else "embedded"  # fmt: skip
    typer.echo(
        f"ledger API on http://{host}:{port} ({store}, {mode}); tokens from "
        f"{settings.api_tokens_file}; OpenAPI at /openapi.json, docs at /docs",
        err=True,
    )
    level = settings.log_level.lower()
    if workers > 1:
        uvicorn.run(
            "ledger.api.app:app_from_environment", factory=True, workers=workers,
            host=host, port=port, log_level=level,
        )  # fmt: skip
        return
    from ledger.api import create_app
    from ledger.api.errors import STORE_UNAVAILABLE

    try:
        api = create_app(settings)
    except STORE_UNAVAILABLE as error:
        _fail(f"the database does not answer ({type(error).__name__}: {error})")
    uvicorn.run(api, host=host, port=port, log_level=level)


def _check_listen(host: str, port: int) -> None:
    """Fail in one line when the server could not listen (unknown host, port taken), instead
    of uvicorn's multi-line log and exit code 3."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except socket.gaierror as error:
        _usage(f"--host: {host!r} is not an address of this machine ({error.strerror})")
    except OSError as error:
        _fail(f"cannot listen on {host}:{port} ({error.strerror})")


# SystemExit, not typer.Exit/BadParameter: those are turned into exit codes by the entry
# point's handlers, which this area should not depend on for its documented 1 and 2.
def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(1)


def _usage(message: str) -> NoReturn:
    typer.echo(f"usage error: {message}", err=True)
    sys.exit(2)


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Option(..., "--name", help="Who or what uses it, e.g. billing-portal."),
    role: str = typer.Option(..., "--role", help="reader, auditor or admin."),
) -> None:
    """Make a token and print it once; only its SHA-256 is kept in the tokens file."""
    from ledger.store import tokens

    try:
        tokens.check_role(role)
        tokens.check_name(name)
    except (tokens.UnknownRole, tokens.InvalidName) as error:
        _usage(f"--{error!s}")
    path = get_settings().api_tokens_file
    try:
        token = tokens.create(path, name, role)
    except tokens.TokenError as error:
        _fail(str(error))
    typer.echo(token)
    typer.echo(
        f"created {role} token {name!r}: copy it now, it is not shown again "
        f"(only its SHA-256 is kept in {path})",
        err=True,
    )


@tokens_app.command("list")
def tokens_list(
    as_json: bool = typer.Option(False, "--json", help="Rows as a JSON array."),
) -> None:
    """Token names and roles (never the tokens, never their digests)."""
    from ledger.cli.tables import print_rows
    from ledger.store import tokens

    path = get_settings().api_tokens_file
    try:
        records = tokens.load(path)
    except tokens.TokenError as error:
        _fail(str(error))
    rows = [{"name": r.name, "role": r.role, "created_at": r.created_at} for r in records]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_rows(rows, title=f"API tokens in {path}")


@tokens_app.command("revoke")
def tokens_revoke(name: str = typer.Argument(..., help="The token's name.")) -> None:
    """Remove a token; a running `ledger serve` refuses it from its next request."""
    from ledger.store import tokens

    path = get_settings().api_tokens_file
    try:
        record = tokens.revoke(path, name)
    except tokens.TokenError as error:
        _fail(str(error))
    typer.echo(f"revoked {record.role} token {record.name!r}")
