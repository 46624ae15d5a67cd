"""Billing messages (SPEC §3): charge, payment, payment_reversed, credit_note, refund,
write_off, write_off_reversed (§12)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import model_validator

from ledger.domain.errors import InvalidMessage
from ledger.domain.money import check_scale
from ledger.messages.envelope import Envelope
from ledger.messages.fields import (
    CREDIT_CHARGE_TYPES,
    BillingPeriod,
    BusinessId,
    ChargeType,
    Currency,
    Day,
    FxRate,
    InvoiceRef,
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
    ms_charge_type: RequiredText | None = None
    cost_currency: Currency | None = None
    cost_fx_rate: FxRate | None = None

    _unprinted_when_null: ClassVar[tuple[str, ...]] = (
        "ms_charge_type", "cost_currency", "cost_fx_rate",
    )  # fmt: skip

    @model_validator(mode="after")
    def _rules(self) -> ChargeMsg:
        cost_currency = self.cost_currency or self.currency
        for name, currency in (("amount", self.currency), ("cost", cost_currency)):
            try:
                check_scale(getattr(self, name), currency, name)
            except InvalidMessage as exc:
                raise _rule(name, _detail(exc, name)) from None
        if cost_currency != self.currency and self.cost_fx_rate is None:
            raise _rule("cost_fx_rate", f"required when cost_currency {cost_currency} differs "
                                        f"from currency {self.currency}")  # fmt: skip
        if self.cost_fx_rate is not None and self.cost_fx_rate <= 0:
            raise _rule("cost_fx_rate", "must be > 0")
        refund = self.charge_type == "cancel_refund"
        credit = self.charge_type in CREDIT_CHARGE_TYPES
        only = "only cancel_refund, remove_quantity, customer_credit and convert charges"
        for name in ("amount", "cost"):
            value: Decimal = getattr(self, name)
            if refund and value > 0:
                raise _rule(name, "must be <= 0 for a cancel_refund charge")
            if not credit and value < 0:
                raise _rule(name, f"must be >= 0 ({only} may be negative)")
        if self.unit_price < 0:
            raise _rule("unit_price", "must be >= 0")
        if not credit and self.quantity < 0:
            raise _rule("quantity", f"must be >= 0 ({only} may be negative)")
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
    invoice_id: InvoiceRef | None = None


class PaymentReversedMsg(Envelope):
    type: Literal["payment_reversed"] = "payment_reversed"

    payment_id: BusinessId
    reason: ReversalReason


class CreditNoteMsg(_PositiveAmount):
    type: Literal["credit_note"] = "credit_note"
    _business_id_field: ClassVar[str | None] = "credit_id"

    credit_id: BusinessId
    reason: RequiredText
    invoice_id: InvoiceRef | None = None


class RefundMsg(_PositiveAmount):
    type: Literal["refund"] = "refund"
    _business_id_field: ClassVar[str | None] = "refund_id"

    refund_id: BusinessId
    reason: RequiredText


class WriteOffMsg(_PositiveAmount):
    """SPEC §12: write `amount` off to bad debt, of `invoice_id` or the oldest open ones."""

    type: Literal["write_off"] = "write_off"
    _business_id_field: ClassVar[str | None] = "write_off_id"

    write_off_id: BusinessId
    reason: RequiredText
    invoice_id: InvoiceRef | None = None


class WriteOffReversedMsg(Envelope):
    """SPEC §12: reopen exactly what write-off `write_off_id` wrote off."""

    type: Literal["write_off_reversed"] = "write_off_reversed"

    write_off_id: BusinessId
    reason: RequiredText
