"""The ledger application on `eventsourcing`: commands, idempotent ingest, invoice and
collections runs, tamper audit. Knows the store only through the library."""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.persistence import IntegrityError, Notification, OperationalError, Recording
from eventsourcing.utils import Environment, EnvType, get_topic

from ledger.deadletters import DeadLetter
from ledger.decisions import APPLIED, REFUSED, Decision, LedgerPOPORecorder
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount, Meta, account_id, end_of, start_of
from ledger.domain.errors import (
    Conflict,
    CurrencyMismatch,
    InvalidState,
    LedgerError,
    UnknownCustomer,
    UnknownPolicy,
)
from ledger.domain.hashchain import GENESIS, hash_version_of
from ledger.domain.ids import is_guid, normalize_id
from ledger.domain.policy import STANDARD_POLICY, CollectionsPolicy
from ledger.domain.remittance import MicrosoftRemittance, remittance_id, same_import
from ledger.messages import Message, differing_fields

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
PG_RECORDER_TOPIC = "ledger.pgrecorder:LedgerPostgresRecorder"
SQLITE_RECORDER_TOPIC = "ledger.decisions:LedgerSQLiteRecorder"
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBusy(LedgerError):
    """Other writers kept winning the store for longer than the retry budget."""

    code = "store_busy"


# How long a writer keeps retrying when other writers get in first (seconds, in all).
WRITE_RETRY_TIMEOUT = float(os.environ.get("LEDGER_WRITE_RETRY_TIMEOUT", "600"))


def _lost_to_another_writer(error: BaseException) -> bool:
    if isinstance(error, IntegrityError):  # same stream version / message decided first
        return True
    # SQLite: the other writer held the file lock for longer than the lock timeout.
    return isinstance(error, OperationalError) and "locked" in str(error).lower()


def with_backoff(
    attempt: Callable[[], T],
    *,
    what: str,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """attempt(), again each time another writer got in first (IntegrityError, SQLite
    locked), after an exponential backoff with full jitter (0.05 s doubling up to 2 s), so
    concurrent writers (two `ledger ingest`, an invoice run during `ledger consume`) take
    turns instead of failing. Raises StoreBusy after `timeout` seconds in all (default
    LEDGER_WRITE_RETRY_TIMEOUT, 600 s); any other error at once."""
    budget = WRITE_RETRY_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + budget
    cap = 0.05
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except (IntegrityError, OperationalError) as error:
            if not _lost_to_another_writer(error):
                raise
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{what}: other writers kept changing the same data for {budget:.0f} s "
                    f"({tries} tries); try again when they are done"
                ) from error
            delay = random.uniform(0, cap)  # jitter, not security
            log.info("store.retry_concurrent_write", what=what, attempt=tries,
                     retry_in=round(delay, 3))  # fmt: skip
            sleep(min(delay, max(0.0, deadline - time.monotonic())))
            cap = min(cap * 2, 2.0)


REGISTERED_TOPIC = get_topic(ev.CustomerRegistered)
CHARGE_TOPIC = get_topic(ev.ChargePosted)
REMITTANCE_OPENED_TOPIC = get_topic(ev.MicrosoftRemittanceOpened)
MS_INVOICE_TOPIC = get_topic(ev.MicrosoftInvoiceRecorded)

# Which aggregate command handles each ingest message type, and the business-id kind.
COMMANDS: dict[str, str] = {
    "customer_updated": "update",
    "charge": "post_charge",
    "payment": "receive_payment",
    "payment_reversed": "reverse_payment",
    "credit_note": "issue_credit_note",
    "refund": "issue_refund",
    "support_ticket_opened": "open_ticket",
    "support_interaction": "log_interaction",
    "support_escalated": "escalate_ticket",
    "support_ticket_resolved": "resolve_ticket",
}


class CollectionsIncomplete(UnknownPolicy):
    """A collections run did every customer but these, whose policy does not exist.

    `skipped`: one UnknownPolicy per customer; `fired`: the events fired for the others
    (saved unless it was a dry run)."""

    def __init__(self, skipped: list[UnknownPolicy], fired: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e.message for e in skipped), field="collections_policy")
        self.skipped = skipped
        self.fired = fired


@dataclass
class Outcome:
    """What happened to one message: `applied`, `duplicate`, `rejected` (decided now, with
    a typed error) or `refused_before` (decided and refused on an earlier delivery: `error`
    is that refusal, `prior` its record; nothing is decided again)."""

    status: str
    error: LedgerError | None = None
    prior: Decision | None = None


class PriorRefusal(LedgerError):
    """A refusal recorded earlier, returned again: its code is the recorded one."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason or "", field=None)
        self.code = decision.code or "ledger_error"


@dataclass(frozen=True)
class Refused:
    """A record refused before any aggregate saw it (unparseable, or it broke processing):
    recorded as a decision like a message. `key` is its message_id when one was readable,
    else ledger.decisions.raw_key(...)."""

    key: str
    fingerprint: str
    error: LedgerError
    customer_id: str | None = None


@dataclass(frozen=True)
class Source:
    """Where an item of a batch came from, and whether it is re-submitted on purpose
    (`ledger deadletters replay`): only then is an earlier refusal decided again."""

    source: str | None = None
    partition: int | None = None
    offset: int | None = None
    replay: bool = False


Item = Message | Refused


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


@dataclass(frozen=True)
class BrokenLink:
    customer_id: str
    position: int
    reason: str


@dataclass(slots=True)
class _Loaded:
    """A stream as handle_batch found it: the account (None: no such customer), its version
    then, and whether it came from the batch cache (so it may be stale)."""

    account: CustomerAccount | None
    version: int
    cached: bool


class LedgerApplication(Application[UUID]):
    name = "ledger"
    # Accounts kept in memory between ingest batches (see handle_batch): at most this many
    # accounts (0 disables) holding at most this many events in all. An account's state
    # takes ~0.8 KB per event it has seen (idempotency keys, unbilled charges, ...), so the
    # event budget is what bounds the memory: 300,000 events ~ 250 MB.
    env: ClassVar[dict[str, str]] = {
        "INGEST_CACHE_MAXSIZE": "10000",
        "INGEST_CACHE_MAX_EVENTS": "300000",
    }

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
        self._cache: OrderedDict[str, CustomerAccount] = OrderedDict()
        self._cache_maxsize = int(self.env.get("INGEST_CACHE_MAXSIZE", "10000"))
        self._cache_max_events = int(self.env.get("INGEST_CACHE_MAX_EVENTS", "300000"))
        self._cache_sizes: dict[str, int] = {}  # events of each cached account when cached
        self._cache_events = 0
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
        processing_event.saved_kwargs.update(kwargs)  # e.g. decisions (ledger.decisions)
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
            return LedgerPOPORecorder()
        return recorder

    def select_decisions(self, keys: Sequence[str]) -> dict[str, Decision]:
        """Recorded decisions of these message keys (see ledger.decisions). A recorder
        without them (only when APPLICATION_RECORDER_TOPIC names the library's own, for
        comparisons) has none: idempotency is then per stream only (logged at start)."""
        select = getattr(self.recorder, "select_decisions", None)
        return select(keys) if select is not None else {}

    # ---- ingest -----------------------------------------------------------------------

    def handle(self, message: Message) -> Outcome:
        return self.handle_batch([message]).outcomes[0]

    def handle_batch(
        self,
        messages: Sequence[Item],
        *,
        sources: Sequence[Source] | None = None,
        dead_letters: Callable[[BatchResult], list[DeadLetter]] | None = None,
    ) -> BatchResult:
        """Decide messages in order; save every touched stream, the decisions (every message
        decided now, store-wide: ledger.decisions) and, when `dead_letters` is given, the
        dead letters it makes of the result, in ONE transaction.

        A message decided before gets that decision again: `duplicate` when it was applied,
        `refused_before` when it was refused (unless its Source says `replay`: decided
        again, the new decision replaces the old). A message_id already decided with another
        payload (any customer) is refused as a `conflict` naming message_id. A message that
        is refused (LedgerError) triggers no event and does not stop the batch. Raises
        IntegrityError when another writer got in first (a stream version, or the same
        message decided at the same time): retry the batch.

        The accounts of the last batches stay in memory (the batch cache) and are changed in
        place, without the reload from the store or the copy the library's repository cache
        would make. That is safe because:
        - only this method puts accounts in the cache, after they were saved, and it never
          hands them out (`find`/`get` load from the store); any other save in this process
          (invoice and collections runs, tests) evicts the streams it wrote;
        - when anything fails before the save is done (a bug, the database down, another
          writer first), every account this batch loaded is evicted: the next try reloads;
        - an account that another process appended to meanwhile is stale: if this batch
          writes to it, the save fails on the version (IntegrityError, retried fresh); if
          it only refused messages with it (e.g. insufficient_credit against an old
          balance), the stream is checked for newer events, and the batch is decided
          again on fresh state before anything is refused.
        The decisions are read from the store on every pass (never cached).
        """
        where = list(sources) if sources is not None else [Source()] * len(messages)
        for _ in range(2):
            loaded: dict[str, _Loaded] = {}
            try:
                self._preload(
                    {m.customer_id for m in messages if not isinstance(m, Refused)}, loaded
                )
                result, accounts, new, renewed = self._decide(messages, where, loaded)
                if self._refused_on_stale_state(messages, result, loaded):
                    self._evict(loaded)
                    continue  # the second pass loads every account fresh
                letters = dead_letters(result) if dead_letters is not None else []
                if accounts or new or renewed or letters:
                    self.save(
                        *accounts.values(),
                        decisions=new,
                        redecisions=renewed,
                        dead_letters=letters,
                        decided_at=self.clock().isoformat(),
                    )
                    for customer_id, account in accounts.items():
                        self._cache_put(customer_id, account)
            except BaseException:
                self._evict(loaded)
                raise
            return result
        raise AssertionError("unreachable: the second pass has no cached accounts")

    def _decide(
        self, messages: Sequence[Item], where: Sequence[Source], loaded: dict[str, _Loaded]
    ) -> tuple[BatchResult, dict[str, CustomerAccount], list[Decision], list[Decision]]:
        accounts: dict[str, CustomerAccount] = {}
        result = BatchResult()
        now = self.clock()
        decided_at = now.isoformat()
        keyed = [
            (m.key, m.fingerprint) if isinstance(m, Refused) else (m.message_id, m.fingerprint())
            for m in messages
        ]
        known = self.select_decisions([k for key, fp in keyed for k in (key, f"{key}#{fp}")])
        new: dict[str, Decision] = {}
        renewed: dict[str, Decision] = {}
        for message, (key, fingerprint), source in zip(messages, keyed, where, strict=True):
            customer_id = message.customer_id
            prior = known.get(key)
            error: LedgerError | None = None
            if prior is not None and prior.fingerprint != fingerprint:
                # SPEC §3: a message_id is unique per message, across customers.
                error = Conflict(
                    f"message_id: {key!r} was already used by another message (customer "
                    f"{prior.customer_id!r}, a different payload)",
                    field="message_id",
                )
                key = f"{key}#{fingerprint}"
                prior = known.get(key)
            if prior is not None and not (source.replay and prior.outcome == REFUSED):
                if prior.outcome == APPLIED:
                    result.outcomes.append(Outcome("duplicate"))
                else:
                    result.outcomes.append(Outcome("refused_before", PriorRefusal(prior), prior))
                continue
            if error is None and isinstance(message, Refused):
                error = message.error
            if error is None:
                assert not isinstance(message, Refused)
                meta = Meta(
                    occurred_at=message.occurred_at,
                    recorded_at=now,
                    message_id=message.message_id,
                    fingerprint=fingerprint,
                )
                try:
                    applied = self._apply(message, meta, accounts, loaded)
                except LedgerError as refusal:
                    error = refusal
                else:
                    result.outcomes.append(Outcome("applied" if applied else "duplicate"))
            if error is not None:
                result.outcomes.append(Outcome("rejected", error))
            decision = Decision(
                key=key,
                fingerprint=fingerprint,
                customer_id=customer_id,
                outcome=APPLIED if error is None else REFUSED,
                code=error.code if error is not None else None,
                reason=error.message if error is not None else None,
                source=source.source,
                partition=source.partition,
                offset=source.offset,
                decided_at=decided_at,
            )
            known[key] = decision
            (renewed if prior is not None else new)[key] = decision
        return result, accounts, list(new.values()), list(renewed.values())

    def _apply(
        self,
        message: Message,
        meta: Meta,
        accounts: dict[str, CustomerAccount],
        loaded: dict[str, _Loaded],
    ) -> bool:
        customer_id = message.customer_id
        account = accounts.get(customer_id) or self._batch_account(customer_id, loaded)
        payload = message.to_payload()
        if message.type == "customer_registered":
            if account is not None:
                try:
                    if account.is_duplicate(meta, "customer:registration"):
                        return False
                except Conflict as error:
                    raise self._named_conflict(error, message, account) from None
                raise self._named_conflict(
                    Conflict(f"customer_id: {customer_id!r} is already registered"),
                    message, account,
                )  # fmt: skip
            accounts[customer_id] = CustomerAccount.register(
                customer_id, payload, meta, known_policies=self.policies
            )
            return True
        if account is None:
            raise UnknownCustomer(
                f"customer_id: {customer_id!r} is not registered", field="customer_id"
            )
        before = account.version
        try:
            if message.type == "customer_updated":
                applied = account.update(payload, meta, known_policies=self.policies)
            else:
                applied = bool(getattr(account, COMMANDS[message.type])(payload, meta))
        except Conflict as error:
            raise self._named_conflict(error, message, account) from None
        if account.version != before or customer_id in accounts:
            accounts[customer_id] = account
        return applied

    def _named_conflict(
        self, error: Conflict, message: Message, account: CustomerAccount
    ) -> Conflict:
        """The conflict naming the field(s) in which `message` differs from the message first
        recorded with its message id or business id (SPEC §3). Only refusals pay this: the
        account's stream is read once more to find that message's event."""
        bid_field, bid = message._business_id_field, message.business_id()
        registration = message.type == "customer_registered"
        first = None
        for event in [*self.stream(message.customer_id), *account.pending_events]:
            if not isinstance(event, ev.LedgerEvent) or "fingerprint" not in event.data:
                continue  # not the first event of an ingest message
            if (
                event.message_id == message.message_id
                or (bid_field is not None and event.data.get(bid_field) == bid)
                or (registration and isinstance(event, ev.CustomerRegistered))
            ):
                first = event
                break
        if first is None:
            return error
        fields = differing_fields(message, {
            **first.data, "message_id": first.message_id,
            "customer_id": message.customer_id, "occurred_at": first.occurred_at,
        })  # fmt: skip
        if not fields:
            return error
        return Conflict(f"{error.message} (differs in {', '.join(fields)})", field=fields[0])

    # ---- the batch cache --------------------------------------------------------------

    def _batch_account(
        self, customer_id: str, loaded: dict[str, _Loaded]
    ) -> CustomerAccount | None:
        entry = loaded.get(customer_id)
        if entry is None:
            account = self._cache.get(customer_id)
            cached = account is not None
            if account is None:
                account = self.find(customer_id)
                if account is not None:
                    self._cache_put(customer_id, account)
            else:
                self._cache.move_to_end(customer_id)
            entry = loaded[customer_id] = _Loaded(
                account, account.version if account else 0, cached
            )
        return entry.account

    def _preload(self, customer_ids: set[str], loaded: dict[str, _Loaded]) -> None:
        """Load the accounts missing from the cache in one query, when the recorder can
        (PostgreSQL); otherwise they load one by one as the batch meets them."""
        select_streams = getattr(self.recorder, "select_streams", None)
        missing = [c for c in customer_ids if c not in self._cache]
        if select_streams is None or len(missing) < 2:
            return
        ids = {self.stream_id(c): c for c in missing}
        streams = select_streams(list(ids))
        for stream_id, customer_id in ids.items():
            stored = streams.get(stream_id)
            account = None
            if stored:
                account = project_aggregate(None, map(self.mapper.to_domain_event, stored))
                assert isinstance(account, CustomerAccount)
                self._cache_put(customer_id, account)
            loaded[customer_id] = _Loaded(account, account.version if account else 0, False)

    def _cache_put(self, customer_id: str, account: CustomerAccount) -> None:
        if self._cache_maxsize <= 0 or account.version > self._cache_max_events:
            self._cache_pop(customer_id)
            return
        self._cache[customer_id] = account
        self._cache.move_to_end(customer_id)
        self._cache_events += account.version - self._cache_sizes.get(customer_id, 0)
        self._cache_sizes[customer_id] = account.version
        while len(self._cache) > self._cache_maxsize or (
            self._cache_events > self._cache_max_events
        ):
            oldest, _ = self._cache.popitem(last=False)
            self._cache_events -= self._cache_sizes.pop(oldest)

    def _cache_pop(self, customer_id: str) -> None:
        if self._cache.pop(customer_id, None) is not None:
            self._cache_events -= self._cache_sizes.pop(customer_id)

    def _evict(self, customer_ids: Iterable[str]) -> None:
        for customer_id in list(customer_ids):
            self._cache_pop(customer_id)

    def _refused_on_stale_state(
        self, messages: Sequence[Item], result: BatchResult, loaded: dict[str, _Loaded]
    ) -> bool:
        """True when a message was refused against a cached account that another writer
        has appended to since (it must be decided again, on fresh state)."""
        suspects = {
            message.customer_id
            for message, outcome in zip(messages, result.outcomes, strict=True)
            if outcome.status == "rejected"
            and (entry := loaded.get(message.customer_id)) is not None
            and entry.cached
        }
        for customer_id in suspects:
            entry = loaded[customer_id]
            newer = self.recorder.select_events(
                self.stream_id(customer_id), gt=entry.version, limit=1
            )
            if newer:
                return True
        return False

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        recordings = super()._record(processing_event)
        # Whatever was saved may be a stream the batch cache holds: drop it (handle_batch
        # puts back the accounts it saved itself).
        if self._cache:
            for aggregate in processing_event.aggregates.values():
                customer_id = getattr(aggregate, "customer_id", None)
                if customer_id is not None:  # cached under the ledger's spelling
                    self._cache_pop(normalize_id(customer_id))
        return recordings

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

    # ---- runs -------------------------------------------------------------------------

    def run_invoices(
        self, period: str, invoice_date: date, progress: Callable[[int], None] | None = None
    ) -> list[str]:
        """Issue this period's invoices. Idempotent: a second run issues nothing."""
        now = self.clock()

        def decide(customer_id: str) -> tuple[CustomerAccount | None, list[str]]:
            account = self.get(customer_id)
            if account.issue_invoice(period, invoice_date, now):
                return account, [f"INV-{account.customer_id}-{period}"]
            return None, []

        return self._for_each_customer(decide, progress=progress, what="invoice run")

    def run_collections(self, as_of: date, *, dry_run: bool = False) -> list[dict[str, Any]]:
        """Apply each customer's policy as of `as_of`; returns the events it fired.

        A customer whose policy does not exist (any more) is never handled by another one:
        every other customer is done (and saved), then CollectionsIncomplete is raised,
        naming each skipped customer and its policy, with the events fired for the rest.
        """
        now = self.clock()
        skipped: list[UnknownPolicy] = []

        def decide(customer_id: str) -> tuple[CustomerAccount | None, list[dict[str, Any]]]:
            account = self.get(customer_id)
            as_of_state = self.replay_as_of(customer_id, as_of)
            if as_of_state is None:
                return None, []
            # The policy as of that day too: a later change of policy is not retroactive.
            policy = self.policies.get(as_of_state.collections_policy)
            if policy is None:
                skipped.append(
                    UnknownPolicy(
                        f"customer {customer_id}: collections_policy "
                        f"{as_of_state.collections_policy!r} is not defined (skipped; defined: "
                        f"{', '.join(sorted(self.policies))})",
                        field="collections_policy",
                    )
                )
                return None, []
            if not account.run_collections(policy, as_of, now, as_of_state):
                return None, []
            fired = [
                {"customer_id": customer_id, "event_type": type(e).__name__, **e.data}
                for e in account.pending_events
                if isinstance(e, ev.LedgerEvent)
            ]
            return account, fired

        done = self._for_each_customer(decide, save=not dry_run, what="collections run")
        if skipped:
            # decide() may run twice for a chunk (a retry): name each customer once.
            unique = list({error.message: error for error in skipped}.values())
            raise CollectionsIncomplete(unique, done)
        return done

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

    # ---- paying Microsoft (one MicrosoftRemittance stream per period and currency) ------

    def _events_of(self, topic: str) -> Iterator[ev.LedgerEvent]:
        for notification in self.notifications(topics=[topic]):
            event = self.mapper.to_domain_event(notification)
            assert isinstance(event, ev.LedgerEvent)
            yield event

    def charge_events(self) -> Iterator[ev.LedgerEvent]:
        """Every ChargePosted event, in global order (read once per reconciliation)."""
        return self._events_of(CHARGE_TOPIC)

    def find_remittance(self, period: str, currency: str) -> MicrosoftRemittance | None:
        try:
            remittance = self.repository.get(remittance_id(period, currency))
        except AggregateNotFoundError:
            return None
        assert isinstance(remittance, MicrosoftRemittance)
        return remittance

    def remittance_currencies(self, period: str) -> dict[str, Decimal]:
        """Currencies the partner owes Microsoft in for `period`, with the cost accrued in
        each (charges of the period, and streams opened by an invoice or a payment)."""
        accrued: dict[str, Decimal] = {}
        for event in self.charge_events():
            if event.data["billing_period"] == period:
                # Owed in Microsoft's currency (SPEC §10: cost_currency, default currency).
                currency = event.data.get("cost_currency") or event.data["currency"]
                accrued[currency] = accrued.get(currency, Decimal(0)) + Decimal(event.data["cost"])
        for event in self._events_of(REMITTANCE_OPENED_TOPIC):
            if event.data["billing_period"] == period:
                accrued.setdefault(event.data["currency"], Decimal(0))
        return accrued

    def recorded_microsoft_invoice(self, invoice_number: str) -> dict[str, Any] | None:
        """The MicrosoftInvoiceRecorded data of an invoice number, whatever its period."""
        for event in self._events_of(MS_INVOICE_TOPIC):
            if event.data["invoice_number"] == invoice_number:
                return event.data
        return None

    def record_microsoft_invoice(
        self, invoice: dict[str, Any], report: dict[str, Any], invoice_date: date
    ) -> bool:
        """Record Microsoft's invoice and its reconciliation report. Idempotent per invoice
        content; raises Conflict when the invoice number came before with other content."""
        known = self.recorded_microsoft_invoice(invoice["invoice_number"])
        if known is not None:
            if same_import(known, invoice):  # identity by content (SPEC §7), not bytes
                return False
            raise Conflict(
                f"invoice_number: {invoice['invoice_number']} was already imported with other "
                f"content (period {known['billing_period']})",
                field="invoice_number",
            )
        period, currency = invoice["billing_period"], invoice["currency"]
        meta = Meta(occurred_at=start_of(invoice_date), recorded_at=self.clock())
        remittance = self.find_remittance(period, currency) or MicrosoftRemittance.open(
            period, currency, meta
        )
        if not remittance.record_invoice(invoice, report, meta):
            return False
        self.save(remittance)
        return True

    def pay_microsoft(
        self,
        period: str,
        amount: Decimal,
        reference: str,
        paid_on: date,
        currency: str | None = None,
        *,
        force: bool = False,
    ) -> tuple[MicrosoftRemittance, bool]:
        """Record a payment to Microsoft for a billing period (idempotent by reference).

        Without `currency`, the period's only currency. Raises CurrencyMismatch (nothing is
        owed in that currency while something is in another), InvalidState (which currency
        is ambiguous), Overpayment (beyond what is due, unless `force`), Conflict.
        """
        owed = self.remittance_currencies(period)
        if currency is None:
            if len(owed) != 1:
                which = ", ".join(sorted(owed)) or "no currency (nothing accrued or invoiced)"
                raise InvalidState(
                    f"currency: Microsoft is owed for {period} in {which}; give --currency",
                    field="currency",
                )
            currency = next(iter(owed))
        elif owed and currency not in owed:
            raise CurrencyMismatch(
                f"currency: nothing is owed to Microsoft for {period} in {currency} "
                f"(owed in {', '.join(sorted(owed))})",
                field="currency",
            )
        meta = Meta(occurred_at=start_of(paid_on), recorded_at=self.clock())
        remittance = self.find_remittance(period, currency) or MicrosoftRemittance.open(
            period, currency, meta
        )
        applied = remittance.record_payment(
            amount, reference, paid_on, currency, meta,
            accrued=owed.get(currency, Decimal(0)), force=force,
        )  # fmt: skip
        if applied:
            self.save(remittance)
        return remittance, applied

    # ---- audit ------------------------------------------------------------------------

    def verify_chains(self) -> tuple[int, BrokenLink | None]:
        """Recompute every stream's hash chain. Returns (events checked, first broken link)."""
        heads: dict[Any, tuple[int, str, str, int]] = {}
        checked = 0
        for notification in self.notifications():
            originator = notification.originator_id
            version, prev_hash, customer_id, rule = heads.get(
                originator, (0, GENESIS, str(originator), 1)
            )
            try:
                event = self.mapper.to_domain_event(notification)
                assert isinstance(event, ev.LedgerEvent)
            except Exception as exc:  # any decoding failure means the row was altered
                return checked, BrokenLink(customer_id, notification.originator_version,
                                           f"event cannot be decoded: {exc}")  # fmt: skip
            if version == 0:  # a stream is named by its first event, never by a later one
                customer_id = event.customer_id
            broken = _check_link(event, version, prev_hash, customer_id, rule)
            if isinstance(broken, BrokenLink):
                return checked, broken
            heads[originator] = (event.originator_version, event.hash, customer_id, broken)
            checked += 1
        return checked, None


def _check_link(
    event: ev.LedgerEvent, last_version: int, prev_hash: str, customer_id: str, rule: int
) -> BrokenLink | int:
    """The hash rule the event verifies under (ledger/domain/hashchain.py), or what is broken.
    `rule` is the stream's rule so far: a stream never goes back to an older rule."""
    position = event.originator_version
    if position != last_version + 1:
        return BrokenLink(customer_id, last_version + 1, f"event missing (next found: {position})")
    if event.prev_hash != prev_hash:
        return BrokenLink(customer_id, position, "previous-hash link does not match")
    version = hash_version_of(event)
    if version is None:
        return BrokenLink(customer_id, position, "content does not match its hash")
    if version < rule:
        return BrokenLink(
            customer_id, position, f"hashed under rule {version} after an event of rule {rule}"
        )
    return version


def account_id_as_written(customer_id: str) -> UUID:
    """The stream id the ledger derived before SPEC §2 (from the id exactly as written)."""
    return uuid5(NAMESPACE_URL, f"csp-ledger:customer:{customer_id}")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "BatchResult", "BrokenLink", "CollectionsIncomplete", "IntegrityError", "LedgerApplication",
    "Outcome", "Refused", "Source", "StoreBusy", "with_backoff",
]  # fmt: skip
