"""`ledger customers forget|encrypt-existing`: erasure of customers' personal data (SPEC §13).
What it does and does not erase: docs/auditors.md, "Erasure"."""

from __future__ import annotations

import typer

customers_app = typer.Typer(help="Customers' personal data: erasure (SPEC §13).")


@customers_app.command("forget")
def customers_forget(
    customer_id: str = typer.Argument(..., help="The customer to forget."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the event), e.g. a ticket."),
) -> None:
    """Erase a customer's personal data (name, email, address, tax id, support subjects and
    notes): destroys their key, records `CustomerPersonalDataErased`. Amounts and ids stay;
    `ledger audit verify` still passes. Again: says so, exit 0. Unknown customer: exit 1."""
    from ledger.bootstrap import build_app
    from ledger.config import check_settings, get_settings

    if not reason.strip():
        raise typer.BadParameter("give the reason for the erasure", param_hint="--reason")
    done = build_app(check_settings(get_settings())).forget(customer_id, reason.strip())
    if done.erased_now:
        typer.echo(
            f"forgot {done.customer_id}: key destroyed, fields erased: "
            f"{', '.join(done.fields) or 'none'}; ticket subjects and notes of "
            f"{done.tickets} ticket(s)"
        )
    else:
        typer.echo(f"{done.customer_id} was already erased")


@customers_app.command("encrypt-existing")
def customers_encrypt_existing() -> None:
    """Once, on a store written before encryption: give every customer a key and restate
    the current personal fields of those stored in clear, sealed. Idempotent. Older events
    keep their plaintext (they are chained by hash; see docs/auditors.md)."""
    from rich.console import Console
    from rich.progress import Progress

    from ledger.bootstrap import build_app
    from ledger.config import check_settings, get_settings

    ledger = build_app(check_settings(get_settings()))
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("encrypting", total=len(ledger.customer_ids()))
        done = ledger.encrypt_existing(progress=lambda n: bar.advance(task, n))
    typer.echo(
        f"restated {done.customers} customer(s) sealed ({done.keys_made} new key(s)); "
        f"{done.skipped} skipped (already sealed, restated or erased)"
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(customers_app, name="customers")
