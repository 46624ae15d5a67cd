"""What every use case of the ledger application shares: the store (the library's save made
cheaper, the ledger's recorders, the decided messages), reading streams and the notification
log, and a run that decides for every customer (with backoff)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.persistence import Notification, Recording
from eventsourcing.utils import Environment, EnvType, get_topic, resolve_topic

from ledger.app.backoff import with_backoff
from ledger.app.decisions import Decision
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount, account_id, end_of
from ledger.domain.errors import UnknownCustomer
from ledger.domain.ids import is_guid, normalize_id
from ledger.domain.policy import STANDARD_POLICY, CollectionsPolicy
from ledger.domain.remittance import MicrosoftRemittance

log = structlog.get_logger(__name__)


Clock = Callable[[], datetime]
PG_RECORDER_TOPIC = "ledger.store.pgrecorder:LedgerPostgresRecorder"
SQLITE_RECORDER_TOPIC = "ledger.store.decisions:LedgerSQLiteRecorder"
# memory:// (tests): named by topic like the others, so this layer imports no store module.
POPO_RECORDER_TOPIC = "ledger.store.decisions:LedgerPOPORecorder"
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


REGISTERED_TOPIC = get_topic(ev.CustomerRegistered)


class LedgerBase(Application[UUID]):
    """The `eventsourcing` Application every use case module extends (see application.py)."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        policies: dict[str, CollectionsPolicy] | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.policies = policies or {"standard": STANDARD_POLICY}
        self._legacy_streams: dict[str, UUID] | None = None  # see stream_id
        if not hasattr(self.recorder, "select_decisions"):
            log.warning(
                "ledger.recorder_without_decisions",
                recorder=type(self.recorder).__name__,
                effect="refusals re-decided on redelivery; message_id unique per stream",
            )

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save. For the ledger's own aggregates it skips the per-object
        checks against runtime-checkable Protocols (typing's isinstance on a Protocol is
        slow: 6 % of an ingest batch); anything else goes through the library's code."""
        if not all(type(obj) in (CustomerAccount, MicrosoftRemittance) for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.saved_kwargs.update(kwargs)  # e.g. decisions (ledger.store.decisions)
        for obj in objs:  # = ProcessingEvent.collect_events for an aggregate
            processing_event.events.extend(obj.collect_events())
            processing_event.aggregates[obj.id] = obj
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # deprecated hook, called as the library does
        return recordings

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        environment = super().construct_env(name, env)
        if environment.get("PERSISTENCE_MODULE") == "eventsourcing.postgres":
            # The library's recorder, with cheaper inserts and multi-stream reads.
            environment.setdefault("APPLICATION_RECORDER_TOPIC", PG_RECORDER_TOPIC)
        elif environment.get("PERSISTENCE_MODULE") == "eventsourcing.sqlite":
            # The library's recorder plus ledger_messages in the events' transaction.
            environment.setdefault("APPLICATION_RECORDER_TOPIC", SQLITE_RECORDER_TOPIC)
        return environment

    def construct_recorder(self) -> Any:
        recorder = super().construct_recorder()
        if type(recorder).__module__ == "eventsourcing.popo":  # memory:// (tests)
            return resolve_topic(POPO_RECORDER_TOPIC)()
        return recorder

    def select_decisions(self, keys: Sequence[str]) -> dict[str, Decision]:
        """Recorded decisions of these message keys (see ledger.store.decisions). A recorder
        without them (only when APPLICATION_RECORDER_TOPIC names the library's own, for
        comparisons) has none: idempotency is then per stream only (logged at start)."""
        select = getattr(self.recorder, "select_decisions", None)
        return select(keys) if select is not None else {}

    # ---- reading ----------------------------------------------------------------------

    def stream_id(self, customer_id: str) -> UUID:
        """The stream of a customer id in either case (SPEC §2: a GUID is one id).

        New streams are `account_id(normalize_id(id))`. A store written before that rule
        may hold a customer registered under a GUID with upper-case letters, whose stream
        id derives from that spelling: such streams are found through an index of the
        registrations whose id is not in the ledger's spelling, read once per process (the
        first time a GUID is looked up; no new ones can appear since every id entering the
        ledger is normalised). Their stored events keep their spelling (they are chained
        by hash); every view shows the lower-case id (`ledger.published.to_published`).
        """
        normal = normalize_id(customer_id)
        if is_guid(normal):
            if self._legacy_streams is None:
                self._legacy_streams = {
                    normalize_id(registered): account_id_as_written(registered)
                    for registered in self._registered_ids()
                    if normalize_id(registered) != registered
                }
            legacy = self._legacy_streams.get(normal)
            if legacy is not None:
                return legacy
        return account_id(normal)

    def find(self, customer_id: str) -> CustomerAccount | None:
        try:
            account = self.repository.get(self.stream_id(customer_id))
        except AggregateNotFoundError:
            return None
        assert isinstance(account, CustomerAccount)
        return account

    def registration(self, customer_id: str) -> dict[str, Any] | None:
        """The data of the customer's registration (`CustomerRegistered`, the first event of
        its stream), read alone: what an update never changes (its currency, SPEC §3) without
        replaying the stream. None: not registered."""
        stored = self.recorder.select_events(self.stream_id(customer_id), limit=1)
        if not stored:
            return None
        event = self.mapper.to_domain_event(stored[0])
        assert isinstance(event, ev.CustomerRegistered)
        return dict(event.data)

    def get(self, customer_id: str) -> CustomerAccount:
        account = self.find(customer_id)
        if account is None:
            raise UnknownCustomer(f"customer_id: {customer_id!r} is not registered")
        return account

    def customer_ids(self) -> list[str]:
        """Every registered customer, in registration order, in the ledger's spelling."""
        return [normalize_id(customer_id) for customer_id in self._registered_ids()]

    def _registered_ids(self) -> list[str]:
        """Every registered customer id as its CustomerRegistered event stores it."""
        ids: list[str] = []
        for notification in self.notifications(topics=[REGISTERED_TOPIC]):
            event = self.mapper.to_domain_event(notification)
            assert isinstance(event, ev.LedgerEvent)
            ids.append(event.data["customer_id"])
        return ids

    def notifications(
        self, start: int = 1, topics: Sequence[str] = (), page: int = 1000
    ) -> Iterator[Notification]:
        """The notification log (global order) from `start`, read page by page."""
        position = start
        while True:
            chunk = self.recorder.select_notifications(position, page, topics=topics)
            yield from chunk
            if len(chunk) < page:
                return
            position = chunk[-1].id + 1

    def stream(self, customer_id: str) -> list[ev.LedgerEvent]:
        events = list(self.events.get(self.stream_id(customer_id)))
        return [e for e in events if isinstance(e, ev.LedgerEvent)]

    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def replay_as_of(self, customer_id: str, day: date) -> CustomerAccount | None:
        """The account as it stood at the end of `day` (events by business time)."""
        cutoff = end_of(day)
        account: CustomerAccount | None = None
        for event in self.stream(customer_id):
            if event.occurred_at > cutoff:
                continue
            if account is None:
                account = event.mutate(None)  # type: ignore[assignment]
            else:
                event.apply(account)
        return account

    # ---- a run over every customer ----------------------------------------------------

    def _for_each_customer(
        self,
        decide: Callable[[str], tuple[CustomerAccount | None, list[T]]],
        *,
        save: bool = True,
        progress: Callable[[int], None] | None = None,
        what: str = "run",
    ) -> list[T]:
        """Decide for every customer, saving 200 streams per transaction. When another
        writer (e.g. `ledger consume`) appended to one of them first, the chunk is decided
        again on fresh state, with backoff (with_backoff: StoreBusy when it never gets in)."""
        results: list[T] = []
        for chunk in _chunks(self.customer_ids(), 200):

            def attempt(chunk: Sequence[str] = chunk) -> list[tuple[Any, list[T]]]:
                decided = [decide(customer_id) for customer_id in chunk]
                touched = [account for account, _ in decided if account is not None]
                if save and touched:
                    self.save(*touched)
                return decided

            decided = with_backoff(attempt, what=what)
            results.extend(item for _, items in decided for item in items)
            if progress:
                progress(len(chunk))
        return results


def account_id_as_written(customer_id: str) -> UUID:
    """The stream id the ledger derived before SPEC §2 (from the id exactly as written)."""
    return uuid5(NAMESPACE_URL, f"csp-ledger:customer:{customer_id}")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
