"""Event-sourced billing ledger for Microsoft CSP partners."""

__version__ = "0.1.0"
