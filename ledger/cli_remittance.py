"""`ledger reconcile` and `ledger remittance …`: paying Microsoft."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `ledger` app."""
