"""The `ledger` command line."""

from __future__ import annotations

import typer

from ledger import __version__
from ledger.config import get_settings
from ledger.logs import configure_logging

app = typer.Typer(no_args_is_help=False, add_completion=False, help=__doc__)


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if ctx.invoked_subcommand is None:
        typer.echo(f"ledger {__version__}: {settings.store_description()}")
        typer.echo("Try `ledger --help`.")


@app.command()
def info() -> None:
    """Show the version and which store and delivery this process would use."""
    typer.echo(f"ledger {__version__}: {get_settings().store_description()}")


def main() -> None:
    app()
