"""`ledger policy show`: the collections policies in words a customer could read."""

from __future__ import annotations

import typer

from ledger.bootstrap import build_app
from ledger.cli.options import CliError
from ledger.config import get_settings
from ledger.domain.policy import describe

policy_app = typer.Typer(help="Collections policies.")


@policy_app.command("show")
def policy_show(name: str | None = typer.Argument(None)) -> None:
    """Print a policy (or all) in words a customer could read."""
    ledger = build_app(get_settings())
    names = [name] if name else sorted(ledger.policies)
    for policy_name in names:
        if policy_name not in ledger.policies:
            raise CliError(f"policy: {policy_name!r} is not defined")
        typer.echo(describe(ledger.policies[policy_name]))


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(policy_app, name="policy")
