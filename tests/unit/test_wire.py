"""ledger.store.wire reads stored events straight into their SPEC §5 form: exactly what decoding
them into domain events and calling to_published gives, for every event type."""

from __future__ import annotations

import json
import uuid
from datetime import date

from eventsourcing.persistence import Notification

from ledger.app.application import LedgerApplication
from ledger.app.demo import run_demo
from ledger.app.microsoft import check
from ledger.domain.events import EVENT_TYPES
from ledger.published import event_id, to_published
from ledger.store.wire import Decoder
from ledger.store.wire import event_id as fast_event_id
from tests.helpers import (
    build,
    charge,
    credit_note,
    customer_registered,
    customer_updated,
    msgs,
    payment,
    payment_reversed,
    refund,
    support_escalated,
    support_interaction,
    support_ticket_opened,
    support_ticket_resolved,
)


def rich_ledger() -> LedgerApplication:
    app = LedgerApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    run_demo(app, lambda _: None)
    app.handle_batch(msgs([
        customer_registered("x", collections_policy="standard"), customer_updated("x"),
        charge("x", "CH-1", "100.00"), payment("x", "P-1", "150.00"), refund("x", "RF-1", "50.00"),
        credit_note("x", "CN-1", "5.00"), support_ticket_opened("x", "T-1"),
        support_interaction("x", "T-1"), support_escalated("x", "T-1"),
        support_ticket_resolved("x", "T-1"),
    ]))  # fmt: skip
    app.run_invoices("2025-01", date(2025, 2, 1))
    app.handle_batch(msgs([payment_reversed("x", "P-1")]))
    app.handle_batch(msgs([  # SPEC §12: a write-off and its reversal
        build("write_off", "x", "wo-1", write_off_id="WO-1", amount="10.00", currency="USD",
              reason="uncollectible"),
        build("write_off_reversed", "x", "wo-2", write_off_id="WO-1", reason="recovered"),
    ]))  # fmt: skip
    check(app, date(2026, 7, 1))  # February's Microsoft invoice is overdue by then
    # SPEC §13: a customer written in clear (before encryption), restated sealed; an erasure.
    app.seal_payload = lambda kind, customer, payload: payload  # type: ignore[method-assign]
    app.handle_batch(msgs([customer_registered("legacy")]))
    del app.seal_payload
    app.encrypt_existing()
    app.forget("x", "erasure request")
    return app


def test_every_stored_event_reads_as_to_published_gives_it() -> None:
    app = rich_ledger()
    decoder = Decoder(app.mapper)
    seen = set()
    notifications = list(app.notifications())
    assert len(notifications) > 500
    for notification in notifications:
        expected = to_published(app.mapper.to_domain_event(notification), notification.id)
        fast = decoder.published(notification)
        assert json.dumps(fast) == json.dumps(expected)  # same keys, order and values
        seen.add(expected["event_type"])
    assert seen == set(EVENT_TYPES)  # every type was checked


def test_an_unusual_stored_event_takes_the_slow_path() -> None:
    app = rich_ledger()
    original = next(iter(app.notifications()))
    state = json.loads(original.state)
    marker = uuid.uuid4()
    state["data"]["marker"] = {"_type_": "uuid_hex", "_data_": marker.hex}  # transcoded value
    altered = Notification(
        id=original.id, originator_id=original.originator_id,
        originator_version=original.originator_version, topic=original.topic,
        state=json.dumps(state).encode(),
    )  # fmt: skip
    published = Decoder(app.mapper).published(altered)
    assert published == to_published(app.mapper.to_domain_event(altered), altered.id)
    assert published is not None and published["data"]["marker"] == marker


def test_event_ids_are_uuid5_as_before() -> None:
    for customer, position in [("contoso", 1), ("a.b:c-d_e", 123456), ("ü", 7)]:
        assert fast_event_id(customer, position) == event_id(customer, position)
        assert uuid.UUID(fast_event_id(customer, position)).version == 5
