"""Ingest batching (SPEC §3): decide a batch of messages, each once store-wide, and save the
touched streams, the decisions and the dead letters in ONE transaction; the batch cache that
keeps accounts in memory between batches."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Recording

from ledger.app.base import Clock, utc_now
from ledger.app.deadletters import DeadLetter
from ledger.app.decisions import APPLIED, REFUSED, Decision
from ledger.app.erasure import PersonalDataKeys
from ledger.domain import events as ev
from ledger.domain.account import CustomerAccount, Meta
from ledger.domain.errors import (
    Conflict,
    LedgerError,
    UnknownCustomer,
)
from ledger.domain.ids import normalize_id
from ledger.domain.policy import CollectionsPolicy
from ledger.messages import Message, differing_fields

COMMANDS: dict[str, str] = {
    "customer_updated": "update",
    "charge": "post_charge",
    "payment": "receive_payment",
    "payment_reversed": "reverse_payment",
    "credit_note": "issue_credit_note",
    "refund": "issue_refund",
    "write_off": "write_off",
    "write_off_reversed": "reverse_write_off",
    "support_ticket_opened": "open_ticket",
    "support_interaction": "log_interaction",
    "support_escalated": "escalate_ticket",
    "support_ticket_resolved": "resolve_ticket",
}


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
    else ledger.app.decisions.raw_key(...)."""

    key: str
    fingerprint: str
    error: LedgerError
    customer_id: str | None = None


class Source(NamedTuple):
    """Where an item of a batch came from, and whether it is re-submitted on purpose
    (`ledger deadletters replay`): only then is an earlier refusal decided again. (A named
    tuple: one per message ingested, made at half a frozen dataclass's cost.)"""

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


@dataclass(slots=True)
class _Loaded:
    """A stream as handle_batch found it: the account (None: no such customer), its version
    then, and whether it came from the batch cache (so it may be stale)."""

    account: CustomerAccount | None
    version: int
    cached: bool


class IngestBatching(PersonalDataKeys):
    """handle_batch and its cache; the rest of the application is in LedgerBase."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        policies: dict[str, CollectionsPolicy] | None = None,
    ) -> None:
        super().__init__(env, clock=clock, policies=policies)
        self._cache: OrderedDict[str, CustomerAccount] = OrderedDict()
        self._cache_maxsize = int(self.env.get("INGEST_CACHE_MAXSIZE", "10000"))
        self._cache_max_events = int(self.env.get("INGEST_CACHE_MAX_EVENTS", "300000"))
        self._cache_sizes: dict[str, int] = {}  # events of each cached account when cached
        self._cache_events = 0

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
        decided now, store-wide: ledger.store.decisions) and, when `dead_letters` is given, the
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
        self.prefetch_seal_keys(messages)  # SPEC §13: keys before the events (erasure.py)
        for _ in range(2):
            loaded: dict[str, _Loaded] = {}
            try:
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
        # Each message's payload is written out once: its fingerprint reuses it, and so
        # does its event (_apply).
        payloads = [None if isinstance(m, Refused) else m.to_payload() for m in messages]
        keyed = [
            (m.key, m.fingerprint)
            if isinstance(m, Refused)
            else (m.message_id, m.fingerprint(payload))
            for m, payload in zip(messages, payloads, strict=True)
        ]
        known = self.select_decisions([key for key, _ in keyed])
        # A key decided with another payload is a conflict, decided under key#fingerprint.
        if conflicting := [
            f"{key}#{fp}" for key, fp in keyed if key in known and known[key].fingerprint != fp
        ]:
            known.update(self.select_decisions(conflicting))
        # Only the accounts of messages not decided before are needed: a batch delivered
        # again (a crash, a second billing run) loads no stream at all.
        self._preload({
            m.customer_id for m, (key, _), s in zip(messages, keyed, where, strict=True)
            if not isinstance(m, Refused) and (key not in known or s.replay)
        }, loaded)  # fmt: skip
        new: dict[str, Decision] = {}
        renewed: dict[str, Decision] = {}
        for message, (key, fingerprint), source, payload in zip(
            messages, keyed, where, payloads, strict=True
        ):
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
                assert not isinstance(message, Refused) and payload is not None
                meta = Meta(
                    occurred_at=message.occurred_at,
                    recorded_at=now,
                    message_id=message.message_id,
                    fingerprint=fingerprint,
                )
                try:
                    applied = self._apply(message, payload, meta, accounts, loaded)
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
        payload: dict[str, Any],
        meta: Meta,
        accounts: dict[str, CustomerAccount],
        loaded: dict[str, _Loaded],
    ) -> bool:
        customer_id = message.customer_id
        account = accounts.get(customer_id) or self._batch_account(customer_id, loaded)
        # SPEC §13: personal fields sealed before the event is hashed and stored.
        # `payload` is message.to_payload(), made once in _decide (its fingerprint's too).
        payload = self.seal_payload(message.type, customer_id, payload)
        if message.type == "customer_registered":
            if account is not None:
                try:
                    if account.is_duplicate(meta, "customer", "registration"):
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
        first_data = self.revealer().data(  # compared in clear (SPEC §13, erasure.py)
            normalize_id(first.customer_id), type(first).__name__, first.data
        )
        fields = differing_fields(message, {
            **first_data, "message_id": first.message_id,
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
                # The library's project_aggregate, without its assert isinstance on a
                # runtime-checkable Protocol (a third of the replay's time).
                for event in map(self.mapper.to_domain_event, stored):
                    account = event.mutate(account)
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
