"""A rebuild of the stored projections on more than one core (PostgreSQL).

One process folds the event store at a core's speed: the fold is Python. Here N worker
processes each read and fold one share of the event store's streams, every projection: the
database hands each worker only its streams (`get_byte(uuid_send(originator_id), 15) % N`,
evaluated by PostgreSQL, so no worker decodes another's events), and Microsoft's own streams
(the partner's account with Microsoft, whose rows are folded in order) all go to worker 0.
A customer's rows are then folded by one worker, whole and in order; the few rows across
customers (journal totals, remittance periods, Microsoft currencies) are sums, added up by
the parent (projections/merging.py). The parent writes every row with COPY, in one
transaction, so readers see the old rows until the new ones are complete.

Live `ledger project` processes: the parent locks `projection_positions` (as the one-process
rebuild does before it writes) before it reads the head, so a projector waits from there to
the commit, and then skips what the rebuild folded (per-customer positions) and applies the
rest. Nothing they applied is lost, nothing counts twice.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal

from ledger.app.views import PROJECTIONS
from ledger.store.db import Database
from projections.base import Rows, folder
from projections.merging import MERGES, merge_rows
from projections.store import PER_CUSTOMER, RowStore, _dumps

# Projections whose rows each belong to one customer.
BY_CUSTOMER = PER_CUSTOMER
PAGE = 5000
PROGRESS_EVERY = 10_000  # events a worker folds between two reports to the parent's bar
_progress: Any = None  # a worker's queue to the parent (set by _report_to)


def _report_to(queue: Any) -> None:
    """A worker process's initializer: where it reports how many events it has folded."""
    global _progress
    _progress = queue


# Streams holding any of these events are Microsoft's own: folded by worker 0, in order.
MICROSOFT_TOPICS = "ledger.domain.events:Microsoft%"


@dataclass(frozen=True)
class Share:
    """What one worker folds: the projections `names`, from the streams of shard `shard`
    of `shards` (Microsoft's streams `microsoft` are shard 0's), up to position `head`."""

    names: tuple[str, ...]
    shard: int
    shards: int
    head: int
    microsoft: tuple[UUID, ...] = ()


@dataclass
class Folded:
    """A worker's result: per-customer rows as (key, JSON document), the rows across
    customers to be added up (projections/merging.py), the last position of each customer
    of its share, and how many events it read."""

    docs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    partial: dict[str, Rows] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    events: int = 0


def _notifications(app: Any, share: Share) -> Iterator[Any]:
    """The share's stored events in notification order, as the library's Notification,
    through one server-side cursor."""
    from eventsourcing.persistence import Notification

    recorder = app.recorder
    shard = SQL(
        "(CASE WHEN originator_id = ANY({ms}) THEN 0"
        " ELSE get_byte(uuid_send(originator_id), 15) % {n} END) = {k}"
    ).format(ms=Literal(list(share.microsoft)), n=Literal(share.shards), k=Literal(share.shard))
    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state"
        " FROM {schema}.{table} WHERE notification_id <= {head} AND {shard}"
        " ORDER BY notification_id"
    ).format(schema=Identifier(recorder.datastore.schema),
             table=Identifier(recorder.events_table_name), head=Literal(share.head),
             shard=shard)  # fmt: skip
    with (
        recorder.datastore.get_connection() as conn,
        conn.transaction(),
        conn.cursor(name="rebuild_share", row_factory=tuple_row, binary=True) as cursor,
    ):
        cursor.itersize = PAGE
        cursor.execute(statement)
        for notification_id, originator_id, version, topic, state in cursor:
            yield Notification(id=notification_id, originator_id=originator_id,
                               originator_version=version, topic=topic,
                               state=bytes(state))  # fmt: skip


def fold_share(database_url: str, share: Share, keys_url: str | None = None) -> Folded:
    """Fold one share of the event store's streams (runs in a worker process), personal
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
    rows: dict[str, Rows] = {n: {} for n in share.names}
    folders = [folder(PROJECTIONS[n], rows[n]) for n in share.names]
    result = Folded()
    positions = result.positions
    decoder = Decoder(app.mapper, event_ids=False)
    try:
        with cyclic_gc_paused():  # plain dicts and strings: no cycles (see readmodels)
            for notification in _notifications(app, share):
                event = decoder.published(notification)
                if event is None:
                    continue
                event = reveal(event)
                result.events += 1
                for fold_in in folders:
                    fold_in(event)
                positions[event["customer_id"]] = event["global_position"]
                if _progress is not None and result.events % PROGRESS_EVERY == 0:
                    _progress.put(PROGRESS_EVERY)
            for fold_in in folders:
                fold_in.finish()
        for name, made in rows.items():
            if name in MERGES:
                result.partial[name] = made
            else:
                result.docs[name] = [(k, _dumps(v)) for k, v in made.items()]
    finally:
        app.close()
    return result


def _follow(futures: list[Any], reports: Any, progress: Callable[[int], None] | None) -> int:
    """Pass the workers' reports on to `progress` until every worker is done; returns the
    number of events reported."""
    reported = 0
    while not all(f.done() for f in futures):
        try:
            folded = reports.get(timeout=0.2)
        except queue.Empty:
            continue
        reported += folded
        if progress:
            progress(folded)
    return reported


def microsoft_streams(db: Database, app: Any, head: int) -> tuple[UUID, ...]:
    """The streams (originator ids) up to `head` that hold any Microsoft event: the
    partner's account with Microsoft, folded by worker 0 in order."""
    recorder = app.recorder
    found = db.conn.execute(
        SQL(
            "SELECT DISTINCT originator_id FROM {schema}.{table}"
            " WHERE topic LIKE %s AND notification_id <= %s"
        ).format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name),
        ),
        (MICROSOFT_TOPICS, head),
    ).fetchall()
    return tuple(sorted(row[0] for row in found))


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
            microsoft = microsoft_streams(db, reader, head)
        finally:
            reader.close()
        # spawn: the parent has threads (a progress bar, a connection pool); a fork would
        # copy their locks in whatever state they are.
        context = multiprocessing.get_context("spawn")
        reports = context.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_report_to, initargs=(reports,)) as pool:  # fmt: skip
            futures = [
                pool.submit(fold_share, db.url,
                            Share(tuple(names), shard, workers, head, microsoft), keys_url)
                for shard in range(workers)
            ]  # fmt: skip
            reported = _follow(futures, reports, progress)
            folded = [f.result() for f in futures]
        count = sum(part.events for part in folded)
        if progress:
            progress(count - reported)
        positions: dict[str, int] = {}
        for part in folded:
            positions.update(part.positions)
        for name in names:
            store.clear(name)
        for name in names:
            if name in MERGES:
                merged = merge_rows(name, [part.partial[name] for part in folded])
                store.copy_docs(name, [(k, _dumps(v)) for k, v in merged.items()], rows=merged)
            else:
                for part in folded:
                    store.copy_docs(name, part.docs[name])
        store.set_customer_positions(list(names), positions)
        if positions:
            store.advance_heads({name: head for name in names})
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return count
