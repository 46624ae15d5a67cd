"""The `ledger` command line: the root command and `main` (the `ledger` entry point). Each
command group is a module of this package that adds itself here. Exit codes: 0 success,
1 failure, 2 bad usage."""

from __future__ import annotations

import sys

import typer

from ledger import __version__
from ledger.cli.options import CliError
from ledger.config import ConfigError, check_settings, get_settings
from ledger.domain.errors import LedgerError
from ledger.logs import configure_logging

app = typer.Typer(
    add_completion=False, help="Event-sourced billing ledger for Microsoft CSP partners."
)


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if ctx.invoked_subcommand is None:
        typer.echo(f"ledger {__version__}: {settings.store_description()}")
        typer.echo("Try `ledger demo`, or `ledger --help` for every command.")


@app.command()
def info() -> None:
    """Show the version and which store and delivery this process uses."""
    typer.echo(f"ledger {__version__}: {check_settings(get_settings()).store_description()}")


def _register_groups() -> None:
    """Each command group lives in its own module and adds itself to `app`. The order is the
    order of `ledger --help` (commands, then groups, each in the order they are added)."""
    from ledger.cli import (
        audit,
        bill,
        collections,
        customers,
        deadletters,
        demo,
        documents,
        export,
        ingest,
        invoice,
        microsoft,
        period,
        pipeline,
        policy,
        projections,
        remittance,
        serve,
        show,
        tokens,
    )

    for group in (invoice, deadletters, audit, collections, policy, projections, ingest,
                  pipeline, show, remittance, serve, tokens, demo, microsoft, bill,
                  documents, period, export, customers):  # fmt: skip
        group.register(app)


_register_groups()


def main() -> None:
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(1)
    except (LedgerError, CliError, ConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(1)
    except OverflowError as error:  # a date computed from input beyond the calendar
        typer.echo(f"error: a date is out of range ({error})", err=True)
        sys.exit(1)
    except Exception as error:  # click usage errors carry exit code 2
        import click

        # typer >= 0.16 raises its vendored click's errors (typer.TyperException), not click's.
        if isinstance(error, click.ClickException | typer.TyperException) and hasattr(
            error, "show"
        ):
            error.show()
            sys.exit(getattr(error, "exit_code", 2))
        typer.echo(f"error: {_one_line(error)}", err=True)
        if _wants_traceback():
            raise
        sys.exit(1)


def _one_line(error: BaseException) -> str:
    """SPEC §9: one clear line for what reaches the top: the store, the configuration, Kafka,
    or (anything else) the exception's type and first line."""
    import sqlite3

    import psycopg
    import pydantic
    from eventsourcing.persistence import PersistenceError

    from ledger.config import redacted
    from ledger.store.eventstore import UnsupportedDatabaseUrl
    from ledger.store.tokens import TokenError

    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, UnsupportedDatabaseUrl | TokenError):
        return first
    if isinstance(error, pydantic.ValidationError):
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        return f"configuration: LEDGER_{where.upper()}: {problem['msg']}"
    if isinstance(error, PersistenceError | sqlite3.Error | psycopg.Error):
        try:
            url = redacted(get_settings().database_url)
        except Exception:
            url = "LEDGER_DATABASE_URL"
        return f"database {url}: {first} ({type(error).__name__})"
    if type(error).__module__.startswith("kafka"):
        name = type(error).__name__
        return f"Kafka ({get_settings().kafka_bootstrap}): {first if name in first else name}"
    if isinstance(error, OSError | ValueError | ArithmeticError):
        return f"{type(error).__name__}: {first}"
    return f"unexpected {type(error).__name__}: {first} (LEDGER_LOG_LEVEL=debug shows where)"


def _wants_traceback() -> bool:
    """The traceback, for a developer, only with LEDGER_LOG_LEVEL=debug."""
    import os

    return os.environ.get("LEDGER_LOG_LEVEL", "").lower() == "debug"
