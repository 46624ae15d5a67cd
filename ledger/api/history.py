"""One customer's stream with the global position of each event, read page by page.

The `eventsourcing` recorders read a stream without its notification ids, and the
notification log has no per-stream filter; the SPEC §5 shape needs both. So this asks the
event table for them, by its primary key (originator_id, originator_version), for the three
recorders the ledger runs on, and falls back to scanning the log for any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from ledger.app.application import LedgerApplication
from ledger.domain.events import LedgerEvent
from ledger.published import to_published


def stream_events(
    app: LedgerApplication, customer_id: str, after: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Events of the customer's stream after stream position `after`, in the SPEC §5 shape
    plus the hash-chain link (`prev_hash`, `hash`). Personal fields are shown in clear or
    `[erased]` (SPEC §13); the hashes are over the sealed values the store holds."""
    out: list[dict[str, Any]] = []
    reveal = app.revealer()
    for notification in _select(app, app.stream_id(customer_id), after, limit):
        event = app.mapper.to_domain_event(notification)
        if isinstance(event, LedgerEvent):
            out.append(
                {**reveal(to_published(event, notification.id)),
                 "prev_hash": event.prev_hash, "hash": event.hash}
            )  # fmt: skip
    return out


def _select(
    app: LedgerApplication, originator: UUID, after: int, limit: int | None
) -> list[Notification]:
    from eventsourcing.popo import POPOApplicationRecorder
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    recorder: Any = app.recorder
    # Subclasses (the ledger's own PostgreSQL recorder) keep the library's table layout.
    if isinstance(recorder, PostgresApplicationRecorder):
        return _postgres(recorder, originator, after, limit)
    if isinstance(recorder, SQLiteApplicationRecorder):
        return _sqlite(recorder, originator, after, limit)
    if isinstance(recorder, POPOApplicationRecorder):
        return _popo(recorder, originator, after, limit)
    found = []
    for notification in _scan(app, originator, after):
        found.append(notification)
        if limit is not None and len(found) == limit:
            break
    return found


def _postgres(recorder: Any, originator: UUID, after: int, limit: int | None) -> list[Notification]:
    from psycopg.sql import SQL, Identifier

    statement = SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state"
        " FROM {schema}.{table} WHERE originator_id = %s AND originator_version > %s"
        " ORDER BY originator_version"
    ).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
    )
    params: list[Any] = [originator, after]
    if limit is not None:
        statement += SQL(" LIMIT %s")
        params.append(limit)
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(statement, params, prepare=True)
        rows = cursor.fetchall()
    return [
        Notification(
            id=row["notification_id"],
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        for row in rows
    ]


def _sqlite(recorder: Any, originator: UUID, after: int, limit: int | None) -> list[Notification]:
    statement = (
        "SELECT rowid, originator_id, originator_version, topic, state"
        f" FROM {recorder.events_table_name} WHERE originator_id=? AND originator_version>?"
        " ORDER BY originator_version"
    )
    params: list[Any] = [originator.hex, after]
    if limit is not None:
        statement += " LIMIT ?"
        params.append(limit)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [
        Notification(
            id=row["rowid"],
            originator_id=recorder.convert_originator_id(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=row["state"],
        )
        for row in rows
    ]


def _popo(recorder: Any, originator: UUID, after: int, limit: int | None) -> list[Notification]:
    with recorder._database_lock:
        index: dict[int, int] = dict(recorder._stored_events_index.get(str(originator), {}))
        found = []
        for version in sorted(v for v in index if v > after):
            stored = recorder._stored_events[index[version]]
            found.append(
                Notification(
                    id=index[version] + 1,  # the in-memory log numbers events from 1
                    originator_id=stored.originator_id,
                    originator_version=stored.originator_version,
                    topic=stored.topic,
                    state=stored.state,
                )
            )
            if limit is not None and len(found) == limit:
                break
    return found


def _scan(app: LedgerApplication, originator: UUID, after: int) -> Iterator[Notification]:
    for notification in app.notifications():
        if notification.originator_id == originator and notification.originator_version > after:
            yield notification
