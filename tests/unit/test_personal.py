"""Sealing personal fields (SPEC §13, ledger/domain/personal.py) and the ingest/read path of an
in-memory ledger: tokens open only for their customer and field under their key, a destroyed
key reads `[erased]`, a missing or another key is an error, never an erasure."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.app.application import LedgerApplication
from ledger.domain.personal import (
    ERASED,
    CustomerKey,
    PersonalDataUnreadable,
    new_key,
    open_token,
    reveal_fields,
    seal,
    seal_fields,
)
from tests.helpers import customer_registered, msgs, support_ticket_opened


def test_a_token_opens_for_its_customer_and_field_only() -> None:
    key = new_key("c1")
    token = seal(key, "name", "Jane Doe")
    assert token.startswith(f"enc:v1:{key.key_id}:") and "Jane" not in token
    assert seal(key, "name", "Jane Doe") != token  # a fresh nonce each time
    assert open_token(key, "c1", "name", token) == "Jane Doe"
    moved = dataclasses.replace(key, customer_id="c2")
    with pytest.raises(PersonalDataUnreadable, match="does not open"):
        open_token(moved, "c2", "name", token)  # copied to another customer
    with pytest.raises(PersonalDataUnreadable, match="does not open"):
        open_token(key, "c1", "email", token)  # or another field
    other = CustomerKey("c1", key.key_id, new_key("c1").key)
    with pytest.raises(PersonalDataUnreadable, match="does not open"):
        open_token(other, "c1", "name", token)  # a wrong key under the same id
    with pytest.raises(PersonalDataUnreadable, match="holds key"):
        open_token(new_key("c1"), "c1", "name", token)  # another key id
    with pytest.raises(PersonalDataUnreadable, match="no key for this customer"):
        open_token(None, "c1", "name", token)


def test_a_destroyed_key_reads_erased_plaintext_too() -> None:
    key = new_key("c1")
    data = seal_fields(key, ("name", "email"), {"name": "Jane", "email": None, "currency": "USD"})
    assert data["email"] is None and data["currency"] == "USD"
    erased = dataclasses.replace(key, key=None)
    assert reveal_fields(erased, "c1", ("name", "email"), data)["name"] == ERASED
    legacy = {"name": "Plain Old Name"}  # written before encryption
    assert reveal_fields(key, "c1", ("name",), legacy) == legacy
    assert reveal_fields(erased, "c1", ("name",), legacy) == {"name": ERASED}
    assert seal(erased, "name", "New Name") == ERASED  # nothing new is kept once erased


def test_ingest_seals_before_the_event_and_reads_reveal() -> None:
    app = LedgerApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app.handle_batch(msgs([
        customer_registered("c1", name="Jane Doe Ltd", email="jane@example.com"),
        support_ticket_opened("c1", "T-1", subject="Jane's router"),
    ]))  # fmt: skip
    stored = [e.data for e in app.stream("c1")]
    assert "Jane" not in repr(stored)
    history = [app.revealer()(e) for e in _published(app)]
    assert history[0]["data"]["name"] == "Jane Doe Ltd"
    assert history[1]["data"]["subject"] == "Jane's router"
    assert app.forget("c1", "DSR-1").erased_now
    assert not app.forget("c1", "DSR-1").erased_now
    after = [app.revealer()(e) for e in _published(app)]
    assert after[0]["data"]["name"] == ERASED and after[1]["data"]["subject"] == ERASED
    assert app.verify_chains()[1] is None


def _published(app: LedgerApplication) -> list[dict[str, object]]:
    from ledger.published import to_published

    return [to_published(app.mapper.to_domain_event(n), n.id) for n in app.notifications()]  # type: ignore[arg-type]
