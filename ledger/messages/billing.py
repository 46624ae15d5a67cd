"""Billing messages (SPEC §3): charge, payment, payment_reversed, credit_note, refund."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import model_validator

from ledger.domain.errors import InvalidMessage
from ledger.domain.money import check_scale
from ledger.messages.envelope import Envelope
from ledger.messages.fields import (
    BillingPeriod,
    BusinessId,
    ChargeType,
    Currency,
    Day,
    MoneyAmount,
    PartnerCenterId,
    PaymentMethod,
    Quantity,
    RequiredText,
    ReversalReason,
    UnitPrice,
    _detail,
    _rule,
)


class ChargeMsg(Envelope):
    type: Literal["charge"] = "charge"
    _business_id_field: ClassVar[str | None] = "charge_id"

    charge_id: BusinessId
    subscription_id: PartnerCenterId
    product_id: BusinessId
    sku_id: BusinessId
    description: RequiredText
    charge_type: ChargeType
    quantity: Quantity
    unit_price: UnitPrice
    amount: MoneyAmount
    currency: Currency
    cost: MoneyAmount
    billing_period: BillingPeriod
    charge_start: Day
    charge_end: Day
    ms_invoice_number: BusinessId | None = None

    @model_validator(mode="after")
    def _rules(self) -> ChargeMsg:
        for name in ("amount", "cost"):
            try:
                check_scale(getattr(self, name), self.currency, name)
            except InvalidMessage as exc:
                raise _rule(name, _detail(exc, name)) from None
        refund = self.charge_type == "cancel_refund"
        for name in ("amount", "cost"):
            value: Decimal = getattr(self, name)
            if refund and value > 0:
                raise _rule(name, "must be <= 0 for a cancel_refund charge")
            if not refund and value < 0:
                raise _rule(name, "must be >= 0 (only a cancel_refund charge may be negative)")
        if self.unit_price < 0:
            raise _rule("unit_price", "must be >= 0")
        if not refund and self.quantity < 0:
            raise _rule("quantity", "must be >= 0 (only a cancel_refund charge may be negative)")
        if self.charge_end < self.charge_start:
            raise _rule(
                "charge_end",
                f"{self.charge_end} is before charge_start {self.charge_start}",
            )
        return self


class _PositiveAmount(Envelope):
    """amount > 0 fitting the currency's minor unit."""

    amount: MoneyAmount
    currency: Currency

    @model_validator(mode="after")
    def _positive(self) -> _PositiveAmount:
        try:
            check_scale(self.amount, self.currency, "amount")
        except InvalidMessage as exc:
            raise _rule("amount", _detail(exc, "amount")) from None
        if self.amount <= 0:
            raise _rule("amount", "must be > 0")
        return self


class PaymentMsg(_PositiveAmount):
    type: Literal["payment"] = "payment"
    _business_id_field: ClassVar[str | None] = "payment_id"

    payment_id: BusinessId
    method: PaymentMethod
    reference: RequiredText
    invoice_id: BusinessId | None = None


class PaymentReversedMsg(Envelope):
    type: Literal["payment_reversed"] = "payment_reversed"

    payment_id: BusinessId
    reason: ReversalReason


class CreditNoteMsg(_PositiveAmount):
    type: Literal["credit_note"] = "credit_note"
    _business_id_field: ClassVar[str | None] = "credit_id"

    credit_id: BusinessId
    reason: RequiredText
    invoice_id: BusinessId | None = None


class RefundMsg(_PositiveAmount):
    type: Literal["refund"] = "refund"
    _business_id_field: ClassVar[str | None] = "refund_id"

    refund_id: BusinessId
    reason: RequiredText
