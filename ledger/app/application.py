"""The ledger application on `eventsourcing`: every use case in one Application, the one each
process builds (ledger.bootstrap). Knows the store only through the library.

Each use case is a module of its own: batching.py (ingest), invoicing.py, collections.py,
remittance.py (paying Microsoft), audit.py; what they share is in base.py, how concurrent
writers take turns in backoff.py."""

from __future__ import annotations

from ledger.app.audit import ChainAudit
from ledger.app.batching import IngestBatching
from ledger.app.collections import CollectionsRuns
from ledger.app.erasure import CustomerErasure
from ledger.app.invoicing import Invoicing
from ledger.app.remittance import PayingMicrosoft


class LedgerApplication(
    IngestBatching, Invoicing, CollectionsRuns, PayingMicrosoft, ChainAudit, CustomerErasure
):
    name = "ledger"
