"""The tamper audit (SPEC §4): recompute every stream's hash chain and name the first
broken event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.app.base import LedgerBase
from ledger.domain import events as ev
from ledger.domain.hashchain import GENESIS, hash_version_of


@dataclass(frozen=True)
class BrokenLink:
    customer_id: str
    position: int
    reason: str


class ChainAudit(LedgerBase):
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
