"""The `ledger` command line (entry point `ledger.cli.main:main`), one module per command
group."""
