"""The `eventsourcing` JSON transcoder with its encoding done by orjson.

Stored event state is written once per event on the ingest path, and the json module's
encoder calling back into Python for each timestamp was a tenth of an ingest batch's CPU.
orjson writes the same JSON for what the ledger's events hold (strings, ints, bools, None,
lists and dicts; insertion order, no spaces, no ASCII escaping) and hands the transcoded
types (datetimes, decimals, UUIDs...) to the library's `_encode_obj` like the json module
does, so the stored bytes decode to the same values with the library's decoder.

Values orjson would write its own way never reach it: a state holding anything but strings,
ints, bools, None, datetimes, decimals and dicts/lists of them (a UUID, which orjson writes
as a plain string; a float, written another way; a tuple; a subclass) is encoded by the
json module, as before (one pass over the values decides; the ledger's events never hold
such values). Datetimes go to `_encode_obj` (a passthrough option). What orjson refuses (an
int beyond 64 bits, a lone surrogate) also goes to the json module.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder

from ledger.domain.isotext import iso_timestamp

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME  # to _encode_obj, as the json module does
TOPIC = "ledger.store.transcoder:LedgerTranscoder"


class LedgerTranscoder(JSONTranscoder):
    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and _plain(obj.values()):
            try:
                return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
            except TypeError:  # orjson.JSONEncodeError is a TypeError
                pass
        return super().encode(obj)

    def _encode_obj(self, o: Any) -> dict[str, Any]:
        # The library's DatetimeAsISO form, its text memoised: a stored event's timestamp
        # and occurred_at were just written out by its hash (ledger.domain.isotext).
        if type(o) is datetime and type(self.types.get(datetime)) is DatetimeAsISO:
            return {"_type_": "datetime_iso", "_data_": iso_timestamp(o)}
        return super()._encode_obj(o)


# Values orjson writes as the json module does, or hands to `_encode_obj` like it.
_PLAIN = frozenset({str, int, bool, type(None), datetime, Decimal})


def _plain(values: Iterable[Any]) -> bool:
    """True when every value is of a _PLAIN type or a dict/list of such (looked into): no
    UUID, no float (written another way by orjson), nothing unforeseen."""
    for value in values:
        kind = type(value)
        if kind in _PLAIN:
            continue
        if kind is dict:
            if not _plain(value.values()):
                return False
        elif kind is list:
            if not _plain(value):
                return False
        else:
            return False
    return True
