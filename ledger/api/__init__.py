"""The read API (SPEC §8): `create_app(settings, ledger_app=None)` builds the FastAPI app."""

from __future__ import annotations

from ledger.api.app import create_app

__all__ = ["create_app"]
