"""Personal data in a customer's events, sealed so that it can be erased (SPEC §13).

Personal fields are stored as self-describing tokens, `enc:v1:<key_id>:<base64(nonce ‖
ciphertext ‖ tag)>`, sealed with AES-256-GCM (NIST SP 800-38D; the pyca `cryptography`
package) under the customer's own key, with `<customer_id>|<field>` as associated data: a
token copied into another customer's event or another field does not open. The events store
the tokens, so the hash chain (ledger/domain/hashchain.py) covers the ciphertext and still
verifies after the key is destroyed; a value that cannot be opened any more reads `[erased]`.

Pure: keys come in as bytes; where they are kept is ledger/store/keys.py.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.domain.errors import LedgerError
from ledger.domain.ids import normalize_id

ERASED = "[erased]"
TOKEN_PREFIX = "enc:v1:"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # GCM's 96-bit nonce, random per value (SP 800-38D §8.2.2)

# Which fields of which event are personal. `address`/`tax_id`: whichever the event carries.
CUSTOMER_FIELDS = ("name", "email", "address", "tax_id")
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "CustomerRegistered": CUSTOMER_FIELDS,
    "CustomerUpdated": CUSTOMER_FIELDS,
    "CustomerPersonalDataEncrypted": CUSTOMER_FIELDS,
    "SupportTicketOpened": ("subject",),
    "SupportInteractionLogged": ("note",),
}
# The same, by the ingest message type that becomes the event.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "customer_registered": CUSTOMER_FIELDS,
    "customer_updated": CUSTOMER_FIELDS,
    "support_ticket_opened": ("subject",),
    "support_interaction": ("note",),
}


class PersonalDataUnreadable(LedgerError):
    """A sealed personal field cannot be opened although its customer is not erased: its key
    is missing from the key store (a wrong key database?) or is not the key it was sealed
    with. Never shown as `[erased]`: a misconfigured key store must not look like an erasure."""

    code = "personal_data_unreadable"


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """A customer's data key as the key store holds it. `key` None: destroyed (erased)."""

    customer_id: str
    key_id: str
    key: bytes | None
    erased_at: str | None = None

    @property
    def erased(self) -> bool:
        return self.key is None


def new_key(customer_id: str) -> CustomerKey:
    """A fresh random AES-256 key with a random id (named in every token it seals)."""
    return CustomerKey(normalize_id(customer_id), os.urandom(8).hex(), AESGCM.generate_key(256))


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def _aad(customer_id: str, field: str) -> bytes:
    return f"{normalize_id(customer_id)}|{field}".encode()


def seal(key: CustomerKey, field: str, value: str) -> str:
    """The token of `value` for `field` of `key.customer_id`. An erased customer's value is
    not kept at all: it is stored as `[erased]`."""
    if key.key is None:
        return ERASED
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.key).encrypt(nonce, value.encode(), _aad(key.customer_id, field))
    return f"{TOKEN_PREFIX}{key.key_id}:{base64.b64encode(nonce + sealed).decode()}"


def open_token(key: CustomerKey | None, customer_id: str, field: str, token: str) -> str:
    """The plaintext of a token; `[erased]` when the customer's key was destroyed. Raises
    PersonalDataUnreadable (no key, another key, or a token altered or moved)."""
    if key is not None and key.erased:
        return ERASED
    key_id, _, body = token[len(TOKEN_PREFIX) :].partition(":")
    where = f"{field} of customer {customer_id!r}"
    if key is None:
        raise PersonalDataUnreadable(
            f"{field}: {where} is sealed under key {key_id} but the key store has no key for "
            "this customer (is LEDGER_KEYS_DATABASE_URL the key store these events were "
            "written with?)",
            field=field,
        )
    if key.key_id != key_id:
        raise PersonalDataUnreadable(
            f"{field}: {where} is sealed under key {key_id}, the key store holds key {key.key_id}",
            field=field,
        )
    try:
        raw = base64.b64decode(body, validate=True)
        plain = AESGCM(key.key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],  # type: ignore[arg-type]
                                        _aad(customer_id, field))  # fmt: skip
    except (InvalidTag, ValueError) as error:
        raise PersonalDataUnreadable(
            f"{field}: {where} does not open with key {key_id} (altered, moved to another "
            f"customer or field, or a wrong key): {type(error).__name__}",
            field=field,
        ) from None
    return plain.decode()


def seal_fields(
    key: CustomerKey, fields: tuple[str, ...], data: Mapping[str, Any]
) -> dict[str, Any]:
    """`data` with its personal `fields` (those present, not None, not sealed yet) sealed."""
    out = dict(data)
    for field in fields:
        value = out.get(field)
        if isinstance(value, str) and not is_sealed(value) and value != ERASED:
            out[field] = seal(key, field, value)
    return out


def reveal_fields(
    key: CustomerKey | None, customer_id: str, fields: tuple[str, ...], data: Mapping[str, Any]
) -> dict[str, Any]:
    """`data` as readers see it: tokens opened; every personal field `[erased]` when the
    customer is erased (plaintext written before encryption too: the event still holds it,
    the ledger no longer shows it). Raises PersonalDataUnreadable."""
    out = dict(data)
    for field in fields:
        value = out.get(field)
        if value is None:
            continue
        if key is not None and key.erased:
            out[field] = ERASED
        elif is_sealed(value):
            out[field] = open_token(key, customer_id, field, value)
    return out


def has_plaintext(event_type: str, data: Mapping[str, Any]) -> bool:
    """True when an event holds a personal field in clear (written before encryption)."""
    return any(
        isinstance(data.get(field), str) and not is_sealed(data[field]) and data[field] != ERASED
        for field in PERSONAL_FIELDS.get(event_type, ())
    )
