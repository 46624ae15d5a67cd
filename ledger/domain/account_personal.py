"""A customer's personal data on their account: restated sealed, or erased (SPEC §13).

`CustomerAccount` (ledger/domain/account.py) inherits these commands and mutators. The
sealing itself is ledger/domain/personal.py; the keys are the application's concern.
"""

from __future__ import annotations

from typing import Any

from ledger.domain import events as ev
from ledger.domain.account_state import AccountState
from ledger.domain.personal import CUSTOMER_FIELDS, ERASED, PERSONAL_FIELDS
from ledger.domain.stream import Meta


class PersonalData(AccountState):
    def personal_fields(self) -> dict[str, str]:
        """The customer's personal fields as the account holds them (sealed or not)."""
        return {
            field: value
            for field in CUSTOMER_FIELDS
            if isinstance(value := getattr(self, field, None), str)
        }

    def restate_sealed(self, sealed: dict[str, Any], tickets: dict[str, str], meta: Meta) -> None:
        """Record the current personal fields (`sealed`: field -> token) and the subjects of
        the tickets (`tickets`: ticket id -> token), sealed, as the values readers use."""
        self._emit(ev.CustomerPersonalDataEncrypted, dict(sealed, tickets=tickets), meta)

    def _when_CustomerPersonalDataEncrypted(
        self, data: dict[str, Any], event: ev.LedgerEvent
    ) -> None:
        for field in PERSONAL_FIELDS["CustomerPersonalDataEncrypted"]:
            if data.get(field) is not None:
                setattr(self, field, data[field])

    def record_erasure(self, reason: str, meta: Meta) -> dict[str, Any]:
        """Record that the customer's personal data was erased (their key destroyed first,
        by the caller). The event names the fields and tickets, never their values."""
        data = {
            "reason": reason,
            "fields": sorted(self.personal_fields()),
            "ticket_fields": ["subject", "note"],
            "ticket_ids": sorted(self.tickets),
        }
        self._emit(ev.CustomerPersonalDataErased, data, meta)
        return data

    def _when_CustomerPersonalDataErased(self, data: dict[str, Any], event: ev.LedgerEvent) -> None:
        for field in data["fields"]:
            setattr(self, field, ERASED)
