"""`ledger demo`: a month or two of a partner's business, end to end."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `ledger` app."""
