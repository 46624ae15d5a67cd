"""The ingest messages of SPEC §3: one frozen pydantic model per `type`, and the parser.

`parse_message(raw, key=...)` turns the bytes of one Kafka value (or one JSONL line) into a
`Message`, or raises a `LedgerError` whose `code` is the dead-letter code and whose
`message` names the offending field in one human-readable line.

Choices where the SPEC is silent (the contract others rely on):

- Unknown extra fields are IGNORED, never an error: producers may add fields of a future
  schema version before the ledger knows them (forward compatibility). They are not part of
  `to_payload()` nor of `fingerprint()`, so they never cause a `conflict`.
- Money (`amount`, `unit_price`, `cost`) comes as a decimal STRING only; a JSON number (int
  or float) is refused: a float is not exact, and accepting ints would make `10` and `"10"`
  two spellings of the same contract. `quantity` also accepts a JSON integer (seat counts
  are naturally integers and an int is exact), but never a float.
- `amount` and `cost` must fit the currency's ISO 4217 minor unit (`"10.001"` USD is
  invalid); `unit_price` and `quantity` may carry up to 18 decimals (SPEC §2: Microsoft's
  usage prices carry 13). Every decimal has at most 15 digits before the point. An error
  names the rule broken ("has 19 decimals, at most 18"). Digits are ASCII only.
- `currency` is an ISO 4217 code from ISO's table (the `iso4217` package), upper case.
- Partner Center ids written as GUIDs (`customer_id`, `subscription_id`) are kept in lower
  case (SPEC §2), so either spelling is the same customer; other ids are kept as given. A
  record key is compared with `customer_id` the same way.
- Every pattern is ASCII-only and must match the whole value (a trailing newline is not
  ignored).
- Charge signs: `amount` and `cost` are >= 0, except for `cancel_refund` where both are
  <= 0 (the partner is refunded by Microsoft too) and the other credit-bearing new-commerce
  types `remove_quantity`, `customer_credit`, `convert` (either sign); `unit_price` is always
  >= 0; `quantity` is >= 0 except for those credit-bearing types.
- `cost_currency` (default `currency`) is Microsoft's currency of `cost`, whose scale is
  checked against it; `cost_fx_rate` (units of `currency` per unit of `cost_currency`, > 0,
  up to 18 decimals) is required when the two differ. `amount` is not checked against
  `quantity * unit_price` (prorations and discounts make them differ).
- Negative zero (`"-0.00"`) is read as zero.
- Required text (ids, names, `description`, `reference`, `reason`, `subject`,
  `resolution`) must contain a non-blank character; it is kept exactly as given (not
  stripped). `note` may be empty. Business ids are at most 128 characters
  and hold no control characters (a "CH-1\n" is not a second charge).
- An optional field given as JSON `null` is the same as absent; `customer_updated` must
  carry at least one non-null optional field.
- `email`, when given, must look like `local@domain` (no further validation).
- Timestamps: RFC 3339 (`T` separator, `Z` or `±HH:MM` offset, optional fraction); the
  offset given is kept on the aware `datetime`. Dates: `YYYY-MM-DD` only.
- `payment_terms_days` is a JSON integer 0..365 (default 30), `minutes` a JSON integer
  0..2_147_483_647; `true`/`false` are never integers and `"yes"`/`1` never booleans.
- The JSON text must be strict: no `NaN`/`Infinity`, no duplicate keys, no UTF-8 BOM
  (each is `malformed_json`).
- `key`: `None` means "no record key, not checked"; any other key (also empty) must equal
  `customer_id`, else `key_mismatch`. The field errors of a message are reported before a
  key mismatch.
- `fingerprint()` is the sha256 of the canonical JSON of everything but `message_id`, with
  decimals normalised (`"10.0"` == `"10.00"`), timestamps in UTC and defaults applied, so
  the same fact re-sent under a new message id has the same fingerprint.

The package: fields.py (field types and validators), envelope.py (what every message
shares, fingerprints), customers.py, billing.py, support.py (the payload models of each
area), parser.py (bytes to a message). Other layers import from here."""

from __future__ import annotations

from ledger.messages.billing import (
    ChargeMsg,
    CreditNoteMsg,
    PaymentMsg,
    PaymentReversedMsg,
    RefundMsg,
    WriteOffMsg,
    WriteOffReversedMsg,
)
from ledger.messages.customers import CustomerRegisteredMsg, CustomerUpdatedMsg
from ledger.messages.envelope import Envelope, differing_fields
from ledger.messages.fields import CREDIT_CHARGE_TYPES, ENVELOPE_FIELDS, MAX_MESSAGE_BYTES
from ledger.messages.parser import MESSAGE_TYPES, Message, parse_message, parse_object
from ledger.messages.support import (
    SupportEscalatedMsg,
    SupportInteractionMsg,
    SupportTicketOpenedMsg,
    SupportTicketResolvedMsg,
)

__all__ = [
    "CREDIT_CHARGE_TYPES",
    "ENVELOPE_FIELDS",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "ChargeMsg",
    "CreditNoteMsg",
    "CustomerRegisteredMsg",
    "CustomerUpdatedMsg",
    "Envelope",
    "Message",
    "PaymentMsg",
    "PaymentReversedMsg",
    "RefundMsg",
    "SupportEscalatedMsg",
    "SupportInteractionMsg",
    "SupportTicketOpenedMsg",
    "SupportTicketResolvedMsg",
    "WriteOffMsg",
    "WriteOffReversedMsg",
    "differing_fields",
    "parse_message",
    "parse_object",
]
