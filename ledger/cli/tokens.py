"""`ledger tokens create|list|revoke`: API bearer tokens (LEDGER_API_TOKENS_FILE); only their
SHA-256 is stored."""

from __future__ import annotations

import json

import typer

from ledger.cli.options import fail, usage_error
from ledger.config import get_settings

tokens_app = typer.Typer(
    help="API bearer tokens (LEDGER_API_TOKENS_FILE): only their SHA-256 is stored."
)


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
        usage_error(f"--{error!s}")
    path = get_settings().api_tokens_file
    try:
        token = tokens.create(path, name, role)
    except tokens.TokenError as error:
        fail(str(error))
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
        fail(str(error))
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
        fail(str(error))
    typer.echo(f"revoked {record.role} token {record.name!r}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(tokens_app, name="tokens")
