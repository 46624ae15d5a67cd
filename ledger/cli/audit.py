"""`ledger audit verify`: tamper evidence, every stream's hash chain recomputed."""

from __future__ import annotations

import typer

from ledger.bootstrap import build_app
from ledger.config import get_settings

audit_app = typer.Typer(help="Tamper evidence.")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every stream's hash chain; name the first broken event."""
    ledger = build_app(get_settings())
    checked, broken = ledger.verify_chains()
    if broken:
        typer.echo(
            f"BROKEN: customer {broken.customer_id} position {broken.position}: {broken.reason} "
            f"({checked} events verified before it)",
        )
        raise typer.Exit(1)
    typer.echo(f"OK: {checked} events verified, every chain intact")


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(audit_app, name="audit")
