"""Personal data that can be erased (SPEC §13), the use case.

Where each step happens:
- Sealing: ingest (`IngestBatching._apply`) seals a message's personal fields under the
  customer's key BEFORE the account records the event, so the stored event, and its chain
  hash, hold only the token (ledger/domain/personal.py).
- Keys: a `KeyStore` (ledger/store/keys.py, table `customer_keys`), kept apart from the
  events: its own database when LEDGER_KEYS_DATABASE_URL is set.
- Reading: every read of the event store goes through a `Revealer` (SPEC §5 dicts in, the
  same dicts with plaintext or `[erased]` out): in-process views, `ledger projections
  rebuild`, the API's event history and documents, and `ledger publish`, so the events on
  `ledger.events` carry plaintext (downstream services are trusted readers; what they
  already received stays theirs) and `CustomerPersonalDataErased` tells them to erase.
- Erasing: `forget` destroys the key FIRST, then records `CustomerPersonalDataErased` (a
  crash in between leaves the data unreadable; running it again records the event).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from eventsourcing.utils import resolve_topic

from ledger.app.base import LedgerBase
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount
from ledger.domain.ids import normalize_id
from ledger.domain.personal import (
    CUSTOMER_FIELDS,
    ERASED,
    MESSAGE_FIELDS,
    PERSONAL_FIELDS,
    CustomerKey,
    has_plaintext,
    is_sealed,
    reveal_fields,
    seal,
    seal_fields,
)
from ledger.domain.stream import Meta

log = structlog.get_logger(__name__)

# Named by topic, so this layer imports no store module (as base.py does for recorders).
KEY_STORE_TOPIC = "ledger.store.keys:key_store_for_env"
SEAL_CACHE_MAX = 100_000  # keys ingest keeps in memory (32 bytes each)


class KeyStore(Protocol):
    """Customers' data keys (ledger/store/keys.py). Ids in the ledger's spelling."""

    def get(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]: ...

    def get_all(self) -> dict[str, CustomerKey]: ...

    def get_or_create(self, customer_ids: Collection[str]) -> dict[str, CustomerKey]: ...

    def destroy(self, customer_id: str) -> bool: ...


class Revealer:
    """Turns SPEC §5 event dicts read from the store into what readers see: personal fields
    opened, or `[erased]`. Keys are looked up once per customer (all at once with
    `everything`, for reads of the whole log). Raises PersonalDataUnreadable."""

    def __init__(self, keys: KeyStore, *, everything: bool = False) -> None:
        self.store = keys
        self.keys: dict[str, CustomerKey | None] = dict(keys.get_all()) if everything else {}
        self.complete = everything

    def prefetch(self, events: Iterable[dict[str, Any]]) -> None:
        """Look up, in one call, the keys of every customer of these events that needs one."""
        if self.complete:
            return
        wanted = {e["customer_id"] for e in events if e["event_type"] in PERSONAL_FIELDS}
        self._load(wanted - self.keys.keys())

    def _load(self, customer_ids: set[str]) -> None:
        if customer_ids:
            found = self.store.get(customer_ids)
            for customer_id in customer_ids:
                self.keys[customer_id] = found.get(customer_id)

    def key(self, customer_id: str) -> CustomerKey | None:
        if customer_id not in self.keys and not self.complete:
            self._load({customer_id})
        return self.keys.get(customer_id)

    def data(self, customer_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        fields = PERSONAL_FIELDS.get(event_type)
        if fields is None:
            return data
        key = self.key(customer_id)
        out = reveal_fields(key, customer_id, fields, data)
        tickets = data.get("tickets")
        if isinstance(tickets, dict):  # CustomerPersonalDataEncrypted: subjects restated
            out["tickets"] = {
                ticket: reveal_fields(key, customer_id, ("subject",), {"subject": s})["subject"]
                for ticket, s in tickets.items()
            }
        return out

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        if event["event_type"] not in PERSONAL_FIELDS:
            return event
        revealed = self.data(event["customer_id"], event["event_type"], event["data"])
        return dict(event, data=revealed)


@dataclass(frozen=True)
class Forgotten:
    customer_id: str
    erased_now: bool  # False: it was erased before (nothing recorded)
    fields: list[str]
    tickets: int


@dataclass(frozen=True)
class EncryptedExisting:
    customers: int  # customers whose current personal fields were restated sealed
    keys_made: int
    skipped: int  # already sealed, restated before, or erased


class PersonalDataKeys(LedgerBase):
    """The key store, sealing at ingest, revealing on reads."""

    _key_store: KeyStore | None = None
    _seal_keys: dict[str, CustomerKey]

    @property
    def key_store(self) -> KeyStore:
        if self._key_store is None:
            self._key_store = resolve_topic(KEY_STORE_TOPIC)(self.env)
        return self._key_store

    @key_store.setter
    def key_store(self, store: KeyStore) -> None:
        self._key_store = store

    def revealer(self, *, everything: bool = False) -> Revealer:
        return Revealer(self.key_store, everything=everything)

    def personal_value(self, customer_id: str, field: str, value: str | None) -> str | None:
        """A personal field as the account holds it (e.g. `account.name`), as readers see it:
        in clear, or `[erased]`. Raises PersonalDataUnreadable."""
        data = self.revealer().data(normalize_id(customer_id), "CustomerUpdated", {field: value})
        return data[field]  # type: ignore[no-any-return]

    # ---- sealing at ingest --------------------------------------------------------------

    def _seal_cache(self) -> dict[str, CustomerKey]:
        cache: dict[str, CustomerKey] = self.__dict__.setdefault("_seal_keys", {})
        if len(cache) > SEAL_CACHE_MAX:
            cache.clear()
        return cache

    def prefetch_seal_keys(self, messages: Sequence[Any]) -> None:
        """Make or fetch, in one call, the keys of the batch's messages that carry personal
        fields (a registration's key is made here, before its event)."""
        cache = self._seal_cache()
        wanted = {
            normalize_id(m.customer_id)
            for m in messages
            if getattr(m, "type", None) in MESSAGE_FIELDS
        } - cache.keys()
        if wanted:
            cache.update(self.key_store.get_or_create(wanted))

    def seal_payload(
        self, message_type: str, customer_id: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """The payload with its personal fields sealed under the customer's key (a key is
        made for a customer who has none); an erased customer's are stored as `[erased]`."""
        fields = MESSAGE_FIELDS.get(message_type)
        if fields is None or not any(isinstance(payload.get(f), str) for f in fields):
            return payload
        cid = normalize_id(customer_id)
        cache = self._seal_cache()
        key = cache.get(cid)
        if key is None:
            key = cache[cid] = self.key_store.get_or_create([cid])[cid]
        return seal_fields(key, fields, payload)


class CustomerErasure(PersonalDataKeys):
    """`ledger customers forget` and `ledger customers encrypt-existing`."""

    def is_erased(self, customer_id: str) -> bool:
        return any(isinstance(e, ev.CustomerPersonalDataErased) for e in self.stream(customer_id))

    def forget(self, customer_id: str, reason: str) -> Forgotten:
        """Erase the customer's personal data: destroy their key, then record
        CustomerPersonalDataErased (reason, the fields and tickets erased; no values).
        Idempotent: erased before → nothing recorded (`erased_now` False). Raises
        UnknownCustomer."""
        account = self.get(customer_id)
        cid = normalize_id(account.customer_id)
        if self.is_erased(cid):
            self.key_store.destroy(cid)  # (a key made since, e.g. by a restatement: gone too)
            return Forgotten(cid, False, [], 0)
        self.key_store.destroy(cid)
        self._seal_cache().pop(cid, None)
        now = self.clock()
        data = account.record_erasure(reason, Meta(occurred_at=now, recorded_at=now))
        self.save(account)
        log.info("customer.forgotten", customer_id=cid, fields=data["fields"],
                 tickets=len(data["ticket_ids"]))  # fmt: skip
        return Forgotten(cid, True, data["fields"], len(data["ticket_ids"]))

    def encrypt_existing(self, progress: Callable[[int], None] | None = None) -> EncryptedExisting:
        """Give every customer a key, and restate sealed the current personal fields (and
        ticket subjects) of those whose events hold them in clear: one
        CustomerPersonalDataEncrypted each, which readers use from then on. Idempotent:
        customers restated before, erased, or never in clear are skipped. The older events
        keep their plaintext: they are chained by hash (docs/auditors.md, Erasure)."""
        made = restated = skipped = 0
        ids = self.customer_ids()
        known = self.key_store.get(ids)
        for customer_id in ids:
            events = self.stream(customer_id)
            if any(isinstance(e, (ev.CustomerPersonalDataEncrypted,
                                  ev.CustomerPersonalDataErased)) for e in events) or not any(
                has_plaintext(type(e).__name__, e.data) for e in events
            ):  # fmt: skip
                skipped += 1
            else:
                if customer_id not in known:
                    made += 1
                key = self.key_store.get_or_create([customer_id])[customer_id]
                self._restate(self.get(customer_id), key, events)
                restated += 1
            if progress:
                progress(1)
        return EncryptedExisting(restated, made, skipped)

    def _restate(
        self, account: CustomerAccount, key: CustomerKey, events: list[ev.LedgerEvent]
    ) -> None:
        fields = {f: v for f, v in account.personal_fields().items() if f in CUSTOMER_FIELDS}
        sealed = seal_fields(key, CUSTOMER_FIELDS, fields)
        subjects = {
            e.data["ticket_id"]: e.data["subject"]
            for e in events
            if isinstance(e, ev.SupportTicketOpened) and isinstance(e.data.get("subject"), str)
        }
        tickets = {
            ticket: s if is_sealed(s) or s == ERASED else seal(key, "subject", s)
            for ticket, s in subjects.items()
        }
        now = self.clock()
        account.restate_sealed(sealed, tickets, Meta(occurred_at=now, recorded_at=now))
        self.save(account)


__all__ = [
    "CustomerErasure",
    "EncryptedExisting",
    "Forgotten",
    "KeyStore",
    "PersonalDataKeys",
    "Revealer",
]
