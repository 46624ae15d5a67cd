"""`ledger demo`: a month or two of a partner's business, end to end, on the embedded store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ledger.config import get_settings
from ledger.logs import configure_logging

DEMO_DB = "ledger-demo.db"

BALANCE_COLUMNS = [
    "customer_id", "name", "billed", "paid", "written_off", "outstanding", "unapplied_credit",
    "overdue", "days_past_due", "status",
]  # fmt: skip
INVOICE_COLUMNS = [
    "invoice_id", "billing_period", "due_date", "subtotal", "tax", "total", "paid", "credited",
    "written_off", "open", "status",
]  # fmt: skip
DELINQUENCY_COLUMNS = [
    "customer_id", "name", "overdue", "days_past_due", "last_action", "last_action_date",
    "suspended_since", "next_action", "next_action_date",
]  # fmt: skip
SUPPORT_COLUMNS = [
    "ticket_id", "customer_id", "subject", "status", "category", "severity", "channel", "minutes",
    "billable_minutes", "escalations",
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    database: Path = typer.Option(
        Path(DEMO_DB), "--db", help="SQLite file for the demo; it is recreated on every run."
    ),
) -> None:
    """Run two months of a CSP partner's billing through the ledger and show the views."""
    from ledger.app.demo import DEMO_DAY, demo_corrections, microsoft_invoice_csv, run_demo
    from ledger.app.views import compute_view
    from ledger.bootstrap import build_app, deadletter_store
    from ledger.cli.tables import print_rows

    console = Console(width=160)
    # The demo reports refused messages itself; per-message warnings would only be noise.
    configure_logging(get_settings().log_format, "error")
    if database.is_dir() or not database.parent.is_dir():  # one usage line, no traceback
        raise typer.BadParameter(
            f"{str(database)!r} is a directory" if database.is_dir()
            else f"the directory {str(database.parent)!r} does not exist",
            param_hint="--db",
        )  # fmt: skip
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)  # every run starts clean
    url = f"sqlite:///{database}"
    settings = get_settings().model_copy(update={"database_url": url, "kafka_bootstrap": None})
    app = build_app(settings)
    console.print(f"[bold]CSP ledger demo[/bold]: two months of a partner's business → {url}")
    with console.status("running…") as status:

        def step(text: str) -> None:
            status.update(text)
            console.print(f"  ✓ {text}", markup=False)

        files: dict[str, bytes] = {}
        totals = run_demo(app, step, deadletter_store(settings), files)
    console.print(
        f"messages: applied {totals.applied}, duplicate {totals.duplicate}, dead-lettered "
        f"{totals.deadlettered}; {app.head_position()} events stored\n"
    )

    def show(view: str, columns: list[str] | None, title: str, **filters: str) -> None:
        rows = compute_view(app, view, DEMO_DAY, **filters)
        if columns:
            rows = [{c: row[c] for c in columns} for row in rows]
        print_rows(rows, title=f"{title} (as of {DEMO_DAY})", console=console)

    show("balances", BALANCE_COLUMNS, "Balances")
    show("delinquency", DELINQUENCY_COLUMNS, "Delinquency")
    show("remittance", None, "Remittance due to Microsoft")
    show("support", SUPPORT_COLUMNS, "Support tickets")
    show("margin", None, "February's margin, billed from Microsoft's file", period="2026-02")
    show("tax", None, "Tax (20 % VAT on tenant-005, billed in EUR)")
    for customer, what in demo_corrections():
        show("invoices", INVOICE_COLUMNS, f"Invoices of {customer}: {what}", customer_id=customer)
    from ledger.cli.microsoft import print_microsoft

    print_microsoft(compute_view(app, "microsoft", DEMO_DAY), DEMO_DAY, console)
    written = {}
    for name, content in files.items():  # February's Microsoft file and the price book
        path = database.with_name(f"{database.stem}-{name}")
        path.write_bytes(content)
        written[name] = path
    recon_file = database.with_name(f"{database.stem}-microsoft-2026-01.csv")
    recon_file.write_bytes(microsoft_invoice_csv(app, "2026-01", "G012345678"))
    checked, broken = app.verify_chains()
    console.print(f"audit: {checked} events, hash chains {'BROKEN' if broken else 'intact'}")
    console.print(
        f"\nNext: [bold]export LEDGER_DATABASE_URL={url}[/bold] then "
        f"`ledger show balances --as-of {DEMO_DAY}`, `ledger show trial-balance`, "
        "`ledger deadletters list`, `ledger audit verify`, "
        f"`ledger reconcile {recon_file} --json`, `ledger show margin`, "
        f"`ledger bill partner-center {written.get('partner-center-G012399999.csv')} "
        f"--price-book {written.get('prices.toml')}` (all duplicates now) or `ledger serve`."
    )
    from ledger.documents.samples import write_samples

    for line in write_samples(app, settings, database, DEMO_DAY):
        console.print(line, highlight=False)
