"""Customer messages (SPEC §3): customer_registered, customer_updated."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import model_validator

from ledger.messages.envelope import Envelope
from ledger.messages.fields import (
    Country,
    Currency,
    Email,
    PaymentTerms,
    RequiredText,
    TaxRate,
    _rule,
)

# SPEC §12 tax fields. Null (absent) means the default: rate "0", not exempt. They are left
# out of fingerprints while null, so a registration re-sent from before them is no conflict.
TAX_FIELDS = ("tax_rate", "tax_exempt", "tax_id", "country", "address")


class _TaxFields(Envelope):
    """The SPEC §12 tax fields both customer messages carry (field order does not matter:
    fingerprints are canonical JSON with sorted keys)."""

    tax_rate: TaxRate | None = None
    tax_exempt: bool | None = None
    tax_id: RequiredText | None = None
    country: Country | None = None
    address: RequiredText | None = None

    _unprinted_when_null: ClassVar[tuple[str, ...]] = TAX_FIELDS


class CustomerRegisteredMsg(_TaxFields):
    type: Literal["customer_registered"] = "customer_registered"
    name: RequiredText
    currency: Currency
    payment_terms_days: PaymentTerms = 30
    collections_policy: RequiredText = "standard"
    email: Email | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            defaults = {"payment_terms_days", "collections_policy"}
            data = {k: v for k, v in data.items() if not (k in defaults and v is None)}
        return data


class CustomerUpdatedMsg(_TaxFields):
    type: Literal["customer_updated"] = "customer_updated"
    name: RequiredText | None = None
    payment_terms_days: PaymentTerms | None = None
    collections_policy: RequiredText | None = None
    email: Email | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> CustomerUpdatedMsg:
        names = ("name", "payment_terms_days", "collections_policy", "email", *TAX_FIELDS)
        if all(getattr(self, n) is None for n in names):
            raise _rule("name", "customer_updated needs at least one of " + ", ".join(names))
        return self
