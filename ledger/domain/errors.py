"""Domain errors. Each carries a stable `code` (the dead-letter codes of the SPEC)."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every domain error: a stable machine `code` and a human `message`."""

    code = "ledger_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidMessage(LedgerError):
    code = "invalid_message"


class MalformedJson(LedgerError):
    code = "malformed_json"


class UnknownType(LedgerError):
    code = "unknown_type"


class KeyMismatch(LedgerError):
    code = "key_mismatch"


class MessageTooLarge(LedgerError):
    code = "too_large"


class UnknownCustomer(LedgerError):
    code = "unknown_customer"


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class Conflict(LedgerError):
    """Same business id (or message id) seen before with a different payload."""

    code = "conflict"


class InsufficientCredit(LedgerError):
    code = "insufficient_credit"


class UnknownReference(LedgerError):
    """A message names a payment, invoice or ticket this customer does not have."""

    code = "unknown_reference"


class InvalidState(LedgerError):
    """The command is well formed but not allowed now (e.g. reversing a reversed payment)."""

    code = "invalid_state"


class UnknownPolicy(LedgerError):
    """A customer names a collections policy that does not exist (fail closed, SPEC §4)."""

    code = "unknown_policy"


class ExceedsOpenAmount(LedgerError):
    """A write-off of more than is open (SPEC §12): dead letter naming `amount`."""

    code = "exceeds_open_amount"
