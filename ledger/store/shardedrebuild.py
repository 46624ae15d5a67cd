"""A rebuild of the stored projections on more than one core (PostgreSQL).

One process folds the event store at ~60,000 events/s, a core's worth: the fold is Python.
Here N worker processes each read the whole notification log up to the head and fold a
share of it: the projections whose every row belongs to one customer (accounts, support,
margin: their keys carry the event's customer id) are split by customer, `crc32(customer)
% N`, so each customer's events are folded, in order, by one worker; the projections with
rows across customers (journal, remittance, microsoft) are each folded whole by one worker.
The workers send back their rows as JSON documents; the parent writes them with COPY, in one
transaction, so readers see the old rows until the new ones are complete.

Live `ledger project` processes: the parent locks `projection_positions` (as the one-process
rebuild does before it writes) before it reads the head, so a projector waits from there to
the commit, and then skips what the rebuild folded (per-customer positions) and applies the
rest. Nothing they applied is lost, nothing counts twice.
"""

from __future__ import annotations

import multiprocessing
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from ledger.app.views import PROJECTIONS
from ledger.store.db import Database
from projections.base import folder
from projections.store import PER_CUSTOMER, RowStore, _dumps

# Projections whose rows each belong to one customer: they can be folded by customer shard.
BY_CUSTOMER = PER_CUSTOMER
PAGE = 5000


@dataclass(frozen=True)
class Share:
    """What one worker folds: these projections for the customers of shard `shard` of
    `shards`, and these projections whole."""

    by_customer: tuple[str, ...]
    whole: tuple[str, ...]
    shard: int
    shards: int


@dataclass
class Folded:
    """A worker's result: rows as (key, JSON document) per projection, the last position of
    each customer of its shard, and how many events it read."""

    docs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    events: int = 0


def shares(names: Sequence[str], workers: int) -> list[Share]:
    """Split the projections among `workers`: the by-customer ones by shard, the others
    whole, from the last worker down (worker 0 has the by-customer share of the first)."""
    split = tuple(n for n in names if n in BY_CUSTOMER)
    whole: list[list[str]] = [[] for _ in range(workers)]
    for i, name in enumerate(n for n in names if n not in BY_CUSTOMER):
        whole[workers - 1 - i % workers].append(name)
    return [Share(split, tuple(whole[k]), k, workers) for k in range(workers)]


def shard_of(customer_id: str, shards: int) -> int:
    """A customer's shard: stable across processes and runs (unlike hash())."""
    return zlib.crc32(customer_id.encode()) % shards


def fold_share(database_url: str, share: Share, head: int, keys_url: str | None = None) -> Folded:
    """Fold the event store up to `head` for one share (runs in a worker process), personal
    fields revealed through the key store (`keys_url`: LEDGER_KEYS_DATABASE_URL, else the
    event store's database), as the one-process rebuild does."""
    from ledger.app.application import LedgerApplication
    from ledger.store.eventstore import eventsourcing_env
    from ledger.store.readmodels import cyclic_gc_paused
    from ledger.store.wire import Decoder

    env = eventsourcing_env(database_url)
    if keys_url:
        env["KEYS_DATABASE_URL"] = keys_url
    app = LedgerApplication(env)
    reveal = app.revealer(everything=True)  # in clear or [erased] (SPEC §13)
    rows: dict[str, dict[str, object]] = {n: {} for n in (*share.by_customer, *share.whole)}
    split = [folder(PROJECTIONS[n], rows[n]) for n in share.by_customer]
    whole = [folder(PROJECTIONS[n], rows[n]) for n in share.whole]
    result = Folded()
    positions = result.positions
    decoder = Decoder(app.mapper, event_ids=False)
    shards, mine = share.shards, share.shard
    mine_cache: dict[str, bool] = {}
    try:
        with cyclic_gc_paused():  # plain dicts and strings: no cycles (see readmodels)
            for notification in app.notifications(start=1, page=PAGE):
                if notification.id > head:
                    break
                event = decoder.published(notification)
                if event is None:
                    continue
                event = reveal(event)
                result.events += 1
                for fold_in in whole:
                    fold_in(event)
                customer = event["customer_id"]
                ours = mine_cache.get(customer)
                if ours is None:
                    ours = mine_cache[customer] = shard_of(customer, shards) == mine
                if ours:
                    for fold_in in split:
                        fold_in(event)
                    positions[customer] = event["global_position"]
            for fold_in in (*split, *whole):
                fold_in.finish()
            result.docs = {n: [(k, _dumps(v)) for k, v in r.items()] for n, r in rows.items()}
    finally:
        app.close()
    return result


def rebuild_sharded(
    db: Database,
    names: Sequence[str],
    workers: int,
    progress: Callable[[int], None] | None = None,
    keys_url: str | None = None,
) -> int:
    """Replace the rows of `names` by a fold of the event store on `workers` processes, in
    `db`'s transaction (committed here). `keys_url`: where customers' keys are, when apart
    from the events. Returns the number of events read."""
    from ledger.app.application import LedgerApplication
    from ledger.store.eventstore import eventsourcing_env

    store = RowStore(db)
    try:
        db.execute("LOCK TABLE projection_positions IN EXCLUSIVE MODE")
        reader = LedgerApplication(eventsourcing_env(db.url))
        try:
            head = reader.head_position()
        finally:
            reader.close()
        # spawn: the parent has threads (a progress bar, a connection pool); a fork would
        # copy their locks in whatever state they are.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(fold_share, db.url, share, head, keys_url)
                for share in shares(names, workers)
            ]
            folded = [f.result() for f in futures]
        count = folded[0].events
        if progress:
            progress(count)
        positions: dict[str, int] = {}
        for part in folded:
            positions.update(part.positions)
        for name in names:
            store.clear(name)
        for part in folded:
            for name, docs in part.docs.items():
                store.copy_docs(name, docs)
        store.set_customer_positions(list(names), positions)
        if positions:
            store.advance_heads({name: head for name in names})
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return count
