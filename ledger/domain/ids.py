"""Partner Center identifiers (SPEC §2): a GUID is one id in any letter case.

Microsoft's own APIs write tenant and subscription ids both as `74221236-D09C-…` and as
`74221236-d09c-…`. The ledger keeps and shows a GUID-shaped id in lower case, everywhere it
enters (ingest, dead-letter replay, reconciliation files, API paths, CLI options) and
wherever a stored id is read back, so the two spellings never become two customers. Ids that
are not GUIDs are business keys chosen by the partner and are left exactly as given.
"""

from __future__ import annotations

import re

# 8-4-4-4-12 hex digits, ASCII only (matched with fullmatch: no trailing newline).
_GUID_RE = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", re.ASCII
)


def is_guid(value: str) -> bool:
    """True when `value` is exactly a GUID (8-4-4-4-12 hex digits, any case)."""
    return _GUID_RE.fullmatch(value) is not None


def normalize_id(value: str) -> str:
    """The ledger's spelling of a Partner Center id: a GUID in lower case, anything else
    unchanged. Idempotent; never raises (validation of the id's characters is the caller's).
    """
    # Cheap tests first: this runs for every event published or projected.
    if len(value) == 36 and not value.islower() and _GUID_RE.fullmatch(value) is not None:
        return value.lower()
    return value


def normalize_invoice_id(value: str) -> str:
    """An invoice id the ledger issued, `INV-<customer_id>-<YYYY-MM>[-N]`, names its customer
    as the ledger spells it: a GUID customer part in lower case. Other ids unchanged."""
    if value.startswith("INV-") and len(value) > 40 and value[40:41] == "-":
        return "INV-" + normalize_id(value[4:40]) + value[40:]
    return value


__all__ = ["is_guid", "normalize_id", "normalize_invoice_id"]
