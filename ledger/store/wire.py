"""The SPEC §5 form of stored events, read straight from their stored JSON.

`ledger publish` and `ledger projections rebuild` read every stored event; turning each into
a domain event object (JSON object hooks, datetime parsing, uuid.UUID objects) only to turn
it back into a dict was most of their time. `Decoder.published(notification)` gives exactly
`ledger.published.to_published(mapper.to_domain_event(notification), notification.id)`
(tested on every event type); anything it does not recognise (an event class outside
`ledger.domain.events`, a transcoded value other than the two timestamps, a cipher or
compressor, a class version) goes through that slow path instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import NAMESPACE_URL

import orjson
from eventsourcing.persistence import Mapper, Notification

from ledger.domain.events import EVENT_TYPES, LedgerEvent
from ledger.domain.ids import normalize_id
from ledger.published import SCHEMA_VERSION, to_published

_EVENTS_MODULE = "ledger.domain.events:"
_NAMESPACE = NAMESPACE_URL.bytes
_TAG = b'"_type_"'
_loads = json.JSONDecoder().decode


def event_id(customer_id: str, position: int) -> str:
    """= ledger.published.event_id (uuid5 in the URL namespace), without uuid.UUID objects."""
    digest = bytearray(
        hashlib.sha1(
            _NAMESPACE + f"csp-ledger:event:{customer_id}:{position}".encode(),
            usedforsecurity=False,
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Decoder:
    def __init__(self, mapper: Mapper[Any], *, event_ids: bool = True) -> None:
        """`event_ids=False` leaves `event_id` out of the fast path's dicts (a rebuild's fold
        never reads it, and its hash is a tenth of the decoding)."""
        self.mapper = mapper
        self.plain = mapper.cipher is None and mapper.compressor is None
        self.event_ids = event_ids

    def published(self, notification: Notification) -> dict[str, Any] | None:
        """The SPEC §5 dict of a stored event; None when it is not a ledger event."""
        topic = notification.topic
        state = notification.state
        if (
            self.plain
            and topic.startswith(_EVENTS_MODULE)
            and topic[len(_EVENTS_MODULE) :] in EVENT_TYPES
            and state.count(_TAG) == 2  # the two timestamps, nothing else transcoded
        ):
            try:
                fields = orjson.loads(state)
            except orjson.JSONDecodeError:  # what only json accepts (NaN, lone surrogates)
                fields = _loads(state.decode("utf-8"))
            occurred, recorded = fields["occurred_at"], fields["timestamp"]
            if (
                occurred.get("_type_") == "datetime_iso"
                and recorded.get("_type_") == "datetime_iso"
                and "class_version" not in fields
            ):
                customer_id = fields["customer_id"]
                position = notification.originator_version
                return {
                    "event_id": event_id(customer_id, position) if self.event_ids else None,
                    "event_type": topic[len(_EVENTS_MODULE) :],
                    "schema_version": SCHEMA_VERSION,
                    "customer_id": normalize_id(customer_id),  # = to_published
                    "stream_position": position,
                    "global_position": notification.id,
                    "occurred_at": occurred["_data_"],
                    "recorded_at": recorded["_data_"],
                    "message_id": fields["message_id"],
                    "data": fields["data"],
                }
        event = self.mapper.to_domain_event(notification)
        if not isinstance(event, LedgerEvent):
            return None
        return to_published(event, notification.id)


__all__ = ["Decoder", "event_id"]
