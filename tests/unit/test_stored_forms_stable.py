"""Values that end up stored in events must not change when their code gets faster:
a fingerprint that changed would turn the redelivery of an old message into a `conflict`,
a chain hash that changed would make `ledger audit verify` fail on an untampered ledger.
The expected values were computed by the original (slower) implementations."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.app.application import LedgerApplication
from ledger.app.demo import run_demo
from ledger.domain.hashchain import HASHED_FIELDS, hash_version_of
from ledger.messages import ENVELOPE_FIELDS, Envelope, parse_message
from ledger.store.eventstore import eventsourcing_env
from tests import helpers as h

V1_STORE = Path(__file__).parent.parent / "fixtures" / "v1_store.jsonl"

FINGERPRINTS = {
    "customer_registered": "b89c1aca2c195da80a43c495f66e5ff135853087f9f4ac2abed3d6ac7814a142",
    "customer_updated": "e3407daad330b73d00c80ec8ca775612229655b161c4840c8baf991d558a282d",
    "charge": "1badf7995a6125478582d6faf6ca8989736405e7dcaef50296794bd51c3610ae",
    "cancel_refund": "6963d81a13bc9c8dc47db6efcdac594cee6baf2db26d0e24bd351dede4ee8c6e",
    "payment": "37c9d288a2068131f0b7a09d391a09f7f1c11a5ce5893a52f49b74df14d34275",
    "payment_reversed": "9ab91dc20f376871aebd27d8d3e4bdc308687d9353ccb15899246fa30fb3e245",
    "credit_note": "4d68b98e47c1f8cdf1b30c784c2302c1aa68923e7c72288d70d0873cde90bcd0",
    "refund": "225ccabfa1444a4de8bbfb024b081df5c0f090117552284cdb5af91e2f5d34b8",
    "support_ticket_opened": "1e98447da71c6cb2139290e183eb7952ab713d0971f3401511804f6e57fd3c9e",
    "support_interaction": "f5bae7284b73aef2c415787ef7b1da60fb6ba6f6b47ad6222ee10f1b36ee1642",
    "support_escalated": "ac1b484e35cfa12c68b92d09ae44adb527522e2a0e0c938c8c8f02c2062aa7db",
    "support_ticket_resolved": "377548f62d7722091712ef0471124383e48358bc9fb5f5211c4d4446300bfed1",
}
MESSAGES = {
    "customer_registered": h.customer_registered("c1"),
    "customer_updated": h.customer_updated("c1"),
    "charge": h.charge("c1", "CH-1", "100.10", occurred_at="2025-01-15T10:00:00+02:00"),
    "cancel_refund": h.charge("c1", "CH-2", "-30.00", charge_type="cancel_refund"),
    "payment": h.payment("c1", "P-1", "40.0", invoice_id="INV-c1-2025-01"),
    "payment_reversed": h.payment_reversed("c1"),
    "credit_note": h.credit_note("c1"),
    "refund": h.refund("c1"),
    "support_ticket_opened": h.support_ticket_opened("c1"),
    "support_interaction": h.support_interaction("c1"),
    "support_escalated": h.support_escalated("c1"),
    "support_ticket_resolved": h.support_ticket_resolved("c1"),
}


def reference_payload(message: Envelope) -> dict[str, Any]:
    """The original to_payload."""

    def wire(value: object) -> object:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime | date):
            return value.isoformat()
        return value

    return {
        name: wire(getattr(message, name))
        for name in type(message).model_fields
        if name not in ENVELOPE_FIELDS
    }


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_fingerprints_are_those_already_stored(kind: str) -> None:
    assert parse_message(MESSAGES[kind]).fingerprint() == FINGERPRINTS[kind]


@pytest.mark.parametrize("kind", sorted(MESSAGES))
def test_payloads_are_those_already_stored(kind: str) -> None:
    message = parse_message(MESSAGES[kind])
    payload, expected = message.to_payload(), reference_payload(message)
    assert json.dumps(payload) == json.dumps(expected)  # same keys, order, values, types


def test_a_fingerprint_ignores_the_offset_of_the_timestamp() -> None:
    utc = parse_message(h.charge("c1", "CH-1", "100.10", occurred_at="2025-01-15T08:00:00Z"))
    assert utc.fingerprint() == FINGERPRINTS["charge"]
    assert utc.occurred_at == datetime(2025, 1, 15, 8, tzinfo=UTC)


# ---- chain hashes over a whole demo ledger --------------------------------
# Events are hashed under rule 2 now (every stored field, ledger/domain/hashchain.py); the
# events of stores written before it (rule 1) still verify under the rule they were written
# with. tests/fixtures/v1_store.jsonl holds the stored events of a small ledger written by the
# code before rule 2 (main at 4ab05a0): customers, charges, payments, a credit note, a
# support ticket, an invoice run, a Microsoft invoice import and a payment to Microsoft.


def reference_chain_hash(event: Any) -> str:
    """The original chain_hash (rule 1): canonical JSON of the whole dict."""
    body = json.dumps(
        {
            "customer_id": event.customer_id,
            "position": event.originator_version,
            "event_type": type(event).__name__,
            "occurred_at": event.occurred_at.isoformat(),
            "recorded_at": event.timestamp.isoformat(),
            "data": event.data,
            "prev_hash": event.prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def reference_chain_hash_v2(event: Any) -> str:
    """Rule 2, written out from the stored fields: what the stored hashes must keep being."""
    fields = vars(event)
    body = json.dumps(
        {
            "v": 2,
            "stream_id": str(fields["originator_id"]),
            "position": fields["originator_version"],
            "event_type": type(event).__name__,
            "customer_id": fields["customer_id"],
            "occurred_at": fields["occurred_at"].isoformat(),
            "recorded_at": fields["timestamp"].isoformat(),
            "message_id": fields["message_id"],
            "originator_topic": fields.get("originator_topic"),
            "data": fields["data"],
            "prev_hash": fields["prev_hash"],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def demo_events() -> list[Any]:
    app = LedgerApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    run_demo(app, lambda _: None)
    assert app.verify_chains()[1] is None
    return [app.mapper.to_domain_event(n) for n in app.notifications()]


def test_new_events_are_hashed_under_rule_2(demo_events: list[Any]) -> None:
    assert len(demo_events) > 500
    for event in demo_events:
        assert event.hash == reference_chain_hash_v2(event)
        assert event.hash != reference_chain_hash(event)


def test_rule_2_covers_every_stored_field(demo_events: list[Any]) -> None:
    """A field added to the events later must be added to the hash (a rule 3), or it would
    be stored outside the chain."""
    stored = {name for event in demo_events for name in vars(event)}
    assert stored - {"hash"} == HASHED_FIELDS


def v1_store() -> LedgerApplication:
    app = LedgerApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    rows = [json.loads(text) for text in V1_STORE.read_text(encoding="utf-8").splitlines()]
    app.recorder.insert_events([
        StoredEvent(originator_id=UUID(r["originator_id"]),
                    originator_version=r["originator_version"], topic=r["topic"],
                    state=r["state"].encode("utf-8"))
        for r in rows
    ])  # fmt: skip
    return app


def test_a_store_written_before_rule_2_loads_and_verifies() -> None:
    app = v1_store()
    events = [app.mapper.to_domain_event(n) for n in app.notifications()]
    assert len(events) == 54
    for event in events:
        assert event.hash == reference_chain_hash(event)
        assert hash_version_of(event) == 1
    assert app.verify_chains() == (54, None)
    fabrikam = app.get("fabrikam")
    assert fabrikam.version == len(app.stream("fabrikam"))


def test_a_store_written_before_rule_2_grows_under_rule_2() -> None:
    """New events of an old stream chain on its old head under rule 2; it still verifies."""
    app = v1_store()
    done = app.handle(parse_message(h.charge("fabrikam", "F-NEW", "12.00")))
    assert done.status == "applied", done.error
    last = app.stream("fabrikam")[-1]
    assert (hash_version_of(last), last.hash) == (2, reference_chain_hash_v2(last))
    assert app.verify_chains()[1] is None


def test_an_old_rule_after_a_new_one_is_named(tmp_path: Path) -> None:
    """Editing a rule 2 event's message id and re-hashing it under rule 1 (which ignores
    message ids) is named: a stream never goes back to an older rule."""
    db = tmp_path / "ledger.db"
    app = LedgerApplication(eventsourcing_env(f"sqlite:///{db}"))
    app.handle_batch([parse_message(h.customer_registered("c1")),
                      parse_message(h.charge("c1", "CH-1", "10.00"))])  # fmt: skip
    second = app.stream("c1")[1]
    with closing(sqlite3.connect(db)) as conn, conn:
        (state,) = conn.execute(
            "SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (second.originator_id.hex,),
        ).fetchone()
        fields = json.loads(state)
        fields.update(message_id="forged", hash=reference_chain_hash(second))
        conn.execute(
            "UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = 2",
            (json.dumps(fields).encode(), second.originator_id.hex),
        )

    _, broken = LedgerApplication(eventsourcing_env(f"sqlite:///{db}")).verify_chains()

    assert broken is not None and (broken.customer_id, broken.position) == ("c1", 2)
    assert "rule 1 after an event of rule 2" in broken.reason
