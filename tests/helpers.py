"""Builders of valid SPEC §3 ingest messages for tests: one small function per message type.

Each builder returns the JSON text of one message (what a Kafka value or a JSONL line holds).
Any field can be overridden by keyword; pass `OMIT` to leave a field out. Defaults are valid
and deterministic: the default `message_id` is derived from the type and the business id, so
building the same message twice gives byte-identical JSON (a redelivery), and
`msg(charge(...))` parses it into a `Message`.

    from tests.helpers import OMIT, charge, customer_registered, msg, payment
    app.handle_batch([msg(customer_registered("c1")), msg(charge("c1", "CH-1", amount="100.00"))])

`jsonl(lines)` makes a file for `ledger ingest`, and `run_cli(url, "ingest", path)` runs the
`ledger` command of this venv as a subprocess on that database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.messages import Message, parse_message

LEDGER_CLI = str(Path(sys.executable).with_name("ledger"))

CUSTOMER = "contoso"
CURRENCY = "USD"
OCCURRED_AT = "2025-01-15T10:00:00Z"


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Override a field with OMIT to leave it out of the message."""


def build(message_type: str, customer_id: str, message_id: str, **fields: Any) -> str:
    """The JSON text of a message: envelope + fields, without the fields set to OMIT."""
    body: dict[str, Any] = {
        "message_id": message_id,
        "type": message_type,
        "customer_id": customer_id,
        "occurred_at": OCCURRED_AT,
        **fields,
    }
    return json.dumps({k: v for k, v in body.items() if v is not OMIT})


def _message(
    message_type: str, customer_id: str, default_id: str, defaults: dict[str, Any],
    overrides: dict[str, Any],
) -> str:  # fmt: skip
    message_id = overrides.pop("message_id", default_id)
    return build(message_type, customer_id, message_id, **{**defaults, **overrides})


def customer_registered(customer_id: str = CUSTOMER, **overrides: Any) -> str:
    return _message(
        "customer_registered", customer_id, f"reg-{customer_id}",
        {"name": f"{customer_id} Ltd", "currency": CURRENCY, "payment_terms_days": 30,
         "collections_policy": "standard", "email": "ap@example.com"},
        overrides,
    )  # fmt: skip


def customer_updated(customer_id: str = CUSTOMER, tag: str = "1", **overrides: Any) -> str:
    return _message(
        "customer_updated", customer_id, f"upd-{customer_id}-{tag}",
        {"payment_terms_days": 45}, overrides,
    )  # fmt: skip


def charge(
    customer_id: str = CUSTOMER, charge_id: str = "CH-1", amount: str = "100.00",
    **overrides: Any,
) -> str:  # fmt: skip
    """A charge of `amount`; cost defaults to 80 % of it (same sign), period 2025-01."""
    period = overrides.get("billing_period", "2025-01")
    refund = overrides.get("charge_type") == "cancel_refund"
    return _message(
        "charge", customer_id, f"chg-{customer_id}-{charge_id}",
        {"charge_id": charge_id, "subscription_id": f"sub-{customer_id}-1",
         "product_id": "CFQ7TTC0LH18", "sku_id": "0001",
         "description": "Microsoft 365 Business Basic",
         "charge_type": "cycle", "quantity": "-1" if refund else "1",
         "unit_price": amount.lstrip("-"), "amount": amount, "currency": CURRENCY,
         "cost": _cost_of(amount), "billing_period": period,
         "charge_start": f"{period}-01", "charge_end": f"{period}-28"},
        overrides,
    )  # fmt: skip


def _cost_of(amount: str) -> str:
    return str((Decimal(amount) * Decimal("0.8")).quantize(Decimal("0.01")))


def payment(
    customer_id: str = CUSTOMER, payment_id: str = "PAY-1", amount: str = "100.00",
    **overrides: Any,
) -> str:  # fmt: skip
    """A payment; add `invoice_id=...` to apply it to one invoice first."""
    return _message(
        "payment", customer_id, f"pay-{customer_id}-{payment_id}",
        {"payment_id": payment_id, "amount": amount, "currency": CURRENCY,
         "method": "bank_transfer", "reference": f"WIRE {payment_id}"},
        overrides,
    )  # fmt: skip


def payment_reversed(
    customer_id: str = CUSTOMER, payment_id: str = "PAY-1", **overrides: Any
) -> str:
    return _message(
        "payment_reversed", customer_id, f"rev-{customer_id}-{payment_id}",
        {"payment_id": payment_id, "reason": "chargeback"}, overrides,
    )  # fmt: skip


def credit_note(
    customer_id: str = CUSTOMER, credit_id: str = "CN-1", amount: str = "10.00",
    **overrides: Any,
) -> str:  # fmt: skip
    return _message(
        "credit_note", customer_id, f"crn-{customer_id}-{credit_id}",
        {"credit_id": credit_id, "amount": amount, "currency": CURRENCY, "reason": "goodwill"},
        overrides,
    )  # fmt: skip


def refund(
    customer_id: str = CUSTOMER, refund_id: str = "RF-1", amount: str = "10.00",
    **overrides: Any,
) -> str:  # fmt: skip
    return _message(
        "refund", customer_id, f"rfd-{customer_id}-{refund_id}",
        {"refund_id": refund_id, "amount": amount, "currency": CURRENCY, "reason": "overpaid"},
        overrides,
    )  # fmt: skip


def support_ticket_opened(
    customer_id: str = CUSTOMER, ticket_id: str = "T-1", **overrides: Any
) -> str:
    return _message(
        "support_ticket_opened", customer_id, f"tko-{customer_id}-{ticket_id}",
        {"ticket_id": ticket_id, "channel": "email", "category": "billing", "severity": "b",
         "subject": "Invoice question"},
        overrides,
    )  # fmt: skip


def support_interaction(
    customer_id: str = CUSTOMER, ticket_id: str = "T-1", tag: str = "1", **overrides: Any
) -> str:
    return _message(
        "support_interaction", customer_id, f"tki-{customer_id}-{ticket_id}-{tag}",
        {"ticket_id": ticket_id, "minutes": 15, "note": "called back", "billable": False},
        overrides,
    )  # fmt: skip


def support_escalated(
    customer_id: str = CUSTOMER, ticket_id: str = "T-1", tag: str = "1", **overrides: Any
) -> str:
    return _message(
        "support_escalated", customer_id, f"tke-{customer_id}-{ticket_id}-{tag}",
        {"ticket_id": ticket_id, "vehicle": "microsoft_commercial",
         "microsoft_case_id": "2501150010001"},
        overrides,
    )  # fmt: skip


def support_ticket_resolved(
    customer_id: str = CUSTOMER, ticket_id: str = "T-1", **overrides: Any
) -> str:
    return _message(
        "support_ticket_resolved", customer_id, f"tkr-{customer_id}-{ticket_id}",
        {"ticket_id": ticket_id, "resolution": "explained the proration"}, overrides,
    )  # fmt: skip


def msg(raw: str) -> Message:
    """Parse one built message (raises the LedgerError a bad one would be dead-lettered with)."""
    return parse_message(raw)


def msgs(raws: Iterable[str]) -> list[Message]:
    return [parse_message(r) for r in raws]


def jsonl(lines: Iterable[str]) -> str:
    """A JSONL document of the given lines (for `ledger ingest FILE`)."""
    return "".join(line + "\n" for line in lines)


def run_cli(
    database_url: str,
    *args: str,
    stdin: str | None = None,
    cwd: Path | str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the `ledger` command of this venv as a user would, on `database_url` only (every
    other LEDGER_* setting of the caller's shell is dropped), logs as JSON on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=database_url, LEDGER_LOG_FORMAT="json")
    return subprocess.run(
        [LEDGER_CLI, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
