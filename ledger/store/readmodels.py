"""The stored read models: rebuild from the event store, status (position and lag), and
which rows a view is served from (stored projections in production, in-process otherwise)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.app.application import LedgerApplication
from ledger.app.views import (
    PROJECTIONS,
    VIEW_SOURCE,
    UnknownView,
    compute_view,
    render_view,
)
from ledger.config import Settings
from ledger.metrics import LOG_HEAD, PROJECTION_LAG, PROJECTION_POSITION
from ledger.store.db import Database
from ledger.store.wire import Decoder
from projections.base import folder
from projections.store import RowStore


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


PAGE = 5000  # events read and folded at a time by a rebuild


class UnknownProjection(ValueError):
    pass


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


def rebuild(
    app: LedgerApplication,
    db: Database,
    names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> int:
    """Replace the rows of the named projections with a fold of the whole event store.

    One transaction: readers see the old rows until the new ones are complete. With
    `workers` > 1 on PostgreSQL, the fold is split among that many processes
    (ledger/store/shardedrebuild.py; the same rows). Returns the number of events read.
    """
    chosen = names or list(PROJECTIONS)
    for name in chosen:
        if name not in PROJECTIONS:
            raise UnknownProjection(f"projection: {name!r} is not one of {', '.join(PROJECTIONS)}")
    if workers > 1 and db.is_postgres:
        from ledger.store.shardedrebuild import rebuild_sharded

        keys_url = app.env.get("KEYS_DATABASE_URL")
        return rebuild_sharded(db, chosen, workers, progress, keys_url=keys_url)
    store = RowStore(db)
    rows: dict[str, Any] = {name: {} for name in chosen}
    positions: dict[str, int] = {}
    count = last = 0
    # Stored events are read straight into their SPEC §5 form (ledger.store.wire: the same dicts
    # as published_events, without decoding domain objects; without the event_id, which no
    # projection reads), in pages of 5000, and each is folded into every projection while
    # it is at hand (projections.base.Folder; the journal sums postings until the end).
    decoder = Decoder(app.mapper, event_ids=False)
    reveal = app.revealer(everything=True)  # personal fields in clear or [erased] (SPEC §13)
    folders = [folder(PROJECTIONS[name], rows[name]) for name in chosen]

    def take(start: int) -> None:
        nonlocal count, last
        for notification in app.notifications(start=start, page=PAGE):
            event = decoder.published(notification)
            if event is None:
                continue
            event = reveal(event)
            for fold_in in folders:
                fold_in(event)
            positions[event["customer_id"]] = last = event["global_position"]
            count += 1
            if progress and count % 1000 == 0:
                progress(1000)

    # The fold makes plain dicts, lists and strings, no reference cycles; the cyclic garbage
    # collector would only keep re-scanning the growing rows (15 % of a rebuild).
    with cyclic_gc_paused():
        take(1)
    if progress:
        progress(count % 1000)
    try:
        if db.is_postgres:
            # Live `ledger project` processes wait from here to the commit (their first
            # write locks positions). What they applied since the fold above is in the event
            # store by now: fold it too, or it would be lost (their offsets are past it).
            db.execute("LOCK TABLE projection_positions IN EXCLUSIVE MODE")
            with cyclic_gc_paused():
                take(last + 1)
        for fold_in in folders:
            fold_in.finish()
        for name in chosen:
            store.clear(name)
            store.save(name, rows[name])
        store.set_customer_positions(chosen, positions)
        if positions:
            store.advance_heads({name: last for name in chosen})
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return count


def status(app: LedgerApplication, db: Database) -> list[ProjectionStatus]:
    store = RowStore(db)
    head = app.head_position()
    result = [ProjectionStatus(name, store.position(name), head) for name in PROJECTIONS]
    db.commit()
    LOG_HEAD.set(head)
    for item in result:
        PROJECTION_POSITION.labels(item.projection).set(item.position)
        PROJECTION_LAG.labels(item.projection).set(item.lag)
    return result


def view_rows(
    app: LedgerApplication,
    settings: Settings,
    view: str,
    as_of: date,
    *,
    historical: bool,
    recorded_at: datetime | None = None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """A SPEC §6 view. With Kafka configured, `ledger project` keeps the rows in the
    database and they are read from there; embedded, for past dates and as recorded at an
    instant, the same projection code folds the event store in-process."""
    if not settings.kafka_bootstrap or historical or recorded_at is not None:
        return compute_view(app, view, as_of, historical=historical, recorded_at=recorded_at,
                            **filters)  # fmt: skip
    if view not in VIEW_SOURCE:
        raise UnknownView(f"view: {view!r} is not one of {', '.join(VIEW_SOURCE)}")
    db = Database(settings.database_url)
    try:
        rows = RowStore(db).load_all(VIEW_SOURCE[view])
        db.commit()
    finally:
        db.close()
    return render_view(app, rows, view, as_of, **filters)
