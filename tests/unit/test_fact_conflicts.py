"""Idempotency by business id (SPEC §3), one kind of fact at a time: the same fact again under
another message id is a duplicate when its payload is the same, and a conflict naming the
kind and the id ("charge CH-1 was already recorded with a different payload") when it is not;
nothing is recorded for either. The account keeps its fingerprints by kind, then id
(ledger.domain.account_state): each kind is its own namespace."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ledger.app.application import LedgerApplication
from ledger.store.eventstore import eventsourcing_env
from tests.helpers import (
    build,
    charge,
    credit_note,
    customer_registered,
    msg,
    payment,
    payment_reversed,
    refund,
    support_ticket_opened,
    support_ticket_resolved,
)

C = "contoso"


def write_off(message_id: str, amount: str) -> str:
    return build("write_off", C, message_id, write_off_id="WO-1", amount=amount, currency="USD",
                 reason="insolvent", occurred_at="2025-04-01T10:00:00Z")  # fmt: skip


def write_off_reversed(message_id: str, reason: str) -> str:
    return build("write_off_reversed", C, message_id, write_off_id="WO-1", reason=reason,
                 occurred_at="2025-04-02T10:00:00Z")  # fmt: skip


def _invoiced(app: LedgerApplication) -> None:
    """contoso invoiced 100.00 for 2025-01, 10.00 of it paid (payment P1), ticket T-1 open."""
    _apply(app, customer_registered(C), charge(C, "CH-1", "100.00"), payment(C, "P1", "10.00"),
           support_ticket_opened(C, "T-1"))  # fmt: skip
    assert app.run_invoices("2025-01", date(2025, 2, 1)) == [f"INV-{C}-2025-01"]


def _apply(app: LedgerApplication, *raws: str) -> None:
    outcomes = app.handle_batch([msg(raw) for raw in raws]).outcomes
    assert [o.status for o in outcomes] == ["applied"] * len(raws), [o.error for o in outcomes]


# (what comes after _invoiced, the fact of that kind last; the same fact with another payload
# under another message id; the conflict's message)
CASES: dict[str, tuple[list[str], str, str]] = {
    "customer": ([customer_registered(C)], customer_registered(C, currency="EUR", message_id="m-2"),
                 "customer registration was already recorded with a different payload"
                 " (differs in currency)"),
    "charge": ([charge(C, "CH-1", "100.00")], charge(C, "CH-1", "120.00", message_id="m-2"),
               "charge CH-1 was already recorded with a different payload"
               " (differs in unit_price, amount, cost)"),
    "payment": ([payment(C, "P1", "10.00")], payment(C, "P1", "11.00", message_id="m-2"),
                "payment P1 was already recorded with a different payload (differs in amount)"),
    "credit": ([credit_note(C, "CN1", "1.00")], credit_note(C, "CN1", "2.00", message_id="m-2"),
               "credit CN1 was already recorded with a different payload (differs in amount)"),
    "refund": ([payment(C, "P9", "500.00"), refund(C, "RF1", "1.00")],
               refund(C, "RF1", "2.00", message_id="m-2"),
               "refund RF1 was already recorded with a different payload (differs in amount)"),
    "reversal": ([payment_reversed(C, "P1")],
                 payment_reversed(C, "P1", reason="error", message_id="m-2"),
                 "reversal P1 was already recorded with a different payload"),
    "write_off": ([write_off("w-1", "5.00")], write_off("m-2", "6.00"),
                  "write_off WO-1 was already recorded with a different payload"
                  " (differs in amount, invoice_id)"),
    "write_off_reversal": ([write_off("w-1", "5.00"), write_off_reversed("x-1", "paid")],
                           write_off_reversed("m-2", "other"),
                           "write_off_reversal WO-1 was already recorded with a different"
                           " payload"),
    "ticket": ([support_ticket_opened(C, "T-1")],
               support_ticket_opened(C, "T-1", subject="other", message_id="m-2"),
               "ticket T-1 was already recorded with a different payload (differs in subject)"),
    "resolution": ([support_ticket_resolved(C, "T-1")],
                   support_ticket_resolved(C, "T-1", resolution="other", message_id="m-2"),
                   "resolution T-1 was already recorded with a different payload"),
}  # fmt: skip
# Already applied by _invoiced.
INVOICED = {customer_registered(C), charge(C, "CH-1", "100.00"), payment(C, "P1", "10.00"),
            support_ticket_opened(C, "T-1")}  # fmt: skip


@pytest.mark.parametrize("kind", list(CASES))
def test_a_business_id_again_is_a_duplicate_or_a_conflict_naming_kind_and_id(kind: str) -> None:
    app = LedgerApplication(eventsourcing_env("memory://"),
                            clock=lambda: datetime(2025, 6, 30, tzinfo=UTC))  # fmt: skip
    _invoiced(app)
    before, other, message = CASES[kind]
    _apply(app, *(raw for raw in before if raw not in INVOICED))
    events = len(app.stream(C))

    [conflict] = app.handle_batch([msg(other)]).outcomes
    [again] = app.handle_batch([msg(before[-1])]).outcomes

    assert conflict.status == "rejected" and conflict.error is not None
    assert (conflict.error.code, str(conflict.error)) == ("conflict", message)
    assert again.status in ("duplicate", "refused_before") and again.error is None
    assert len(app.stream(C)) == events
