"""Response shapes of the read API (SPEC §5 and §6 field names), for validation and OpenAPI."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Amount = Annotated[
    str,
    Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", examples=["125.00"],
          description="Decimal string in the currency's minor unit; never a float."),
]  # fmt: skip
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Currency = Annotated[str, Field(examples=["USD"], description="ISO 4217")]
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class Row(BaseModel):
    # Rows may grow fields before this model does; they pass through, documented or not.
    model_config = ConfigDict(extra="allow")


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class Health(BaseModel):
    status: Literal["ok"]
    mode: Literal["embedded", "kafka"] = Field(
        description="embedded: views computed in-process; kafka: served from stored projections"
    )
    store: Literal["postgresql", "sqlite", "memory"]
    event_log_head: int = Field(description="Highest global position in the event store.")


class Customer(Row):
    customer_id: str
    name: str | None
    currency: Currency
    email: str | None = None
    payment_terms_days: int
    collections_policy: str
    status: Literal["active", "suspended"]
    suspended_subscriptions: list[str]
    registered_at: Timestamp | None = None
    tax_rate: str = Field("0", description="Percent charged on invoices (SPEC §12).")
    tax_exempt: bool = False
    tax_id: str | None = None
    country: str | None = Field(None, description="ISO 3166-1 alpha-2.")
    address: str | None = None


class Aging(BaseModel):
    current: Amount
    d1_30: Amount
    d31_60: Amount
    d61_90: Amount
    d90_plus: Amount


class Balance(Row):
    """SPEC §6 `balances` row."""

    customer_id: str
    name: str | None
    currency: Currency
    billed: Amount
    unbilled: Amount
    paid: Amount
    credited: Amount
    refunded: Amount
    written_off: Amount = Field(description="Written off to bad debt (SPEC §12), net of reversals.")
    outstanding: Amount
    unapplied_credit: Amount
    balance: Amount
    overdue: Amount
    days_past_due: int
    aging: Aging
    status: Literal["active", "suspended"]
    last_payment_date: date | None


class Invoice(Row):
    """SPEC §12 `invoices` row (projections/invoices.py `invoice_row`)."""

    invoice_id: str
    kind: Literal["invoice", "debit_memo"] = Field(
        description="debit_memo: re-billed when a reversed payment had been refunded out"
    )
    billing_period: str | None = Field(
        description="Billing period YYYY-MM (null for a debit memo)."
    )
    invoice_date: date | None
    due_date: date
    currency: Currency
    subtotal: Amount = Field(description="Its charges, before tax.")
    tax: Amount = Field(description="subtotal x the customer's tax rate, half-even; 0 if exempt.")
    total: Amount = Field(description="Gross: subtotal + tax.")
    paid: Amount = Field(description="Settled by cash (payments net of reversals).")
    credited: Amount = Field(description="Settled by credit notes or credit invoices.")
    written_off: Amount = Field(description="Written off to bad debt (net of reversals).")
    open: Amount = Field(description="What is still open on it.")
    status: Literal["open", "partially_paid", "paid", "written_off", "void"]
    days_past_due: int = Field(description="On `as_of`; 0 when not open or not yet due.")


class Event(Row):
    """SPEC §5 event, as published on `ledger.events`, with its hash-chain link."""

    event_id: str
    event_type: str = Field(examples=["PaymentReceived"])
    schema_version: int
    customer_id: str
    stream_position: int
    global_position: int
    occurred_at: Timestamp
    recorded_at: Timestamp
    message_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class Delinquency(Row):
    """SPEC §6 `delinquency` row."""

    customer_id: str
    name: str | None
    currency: Currency
    overdue: Amount
    days_past_due: int
    policy: str
    last_action: Literal["reminder", "final_notice", "suspend"] | None
    last_action_date: date | None
    suspended_since: date | None
    next_action: str | None = Field(
        description="reminder, final_notice or suspend; for a suspended customer with nothing"
        " overdue, what reinstates it (reinstate_when_paid_in_full, ...), with no date"
    )
    next_action_date: date | None


class Remittance(Row):
    """SPEC §6 `remittance` row."""

    billing_period: str
    currency: Currency
    cost_accrued: Amount
    microsoft_invoiced: Amount | None
    paid_to_microsoft: Amount
    due_to_microsoft: Amount
    due_date: date | None
    collected_from_customers: Amount
    exposure: Amount


class TaxRow(Row):
    """SPEC §12 `tax` row: per billing period and currency."""

    billing_period: str
    currency: Currency
    taxable: Amount = Field(description="Subtotals of the period's invoices (void ones not).")
    tax_invoiced: Amount
    tax_credited: Amount = Field(description="Given back by credit notes naming the invoices.")
    tax_due: Amount = Field(description="tax_invoiced - tax_credited.")


class MarginRow(Row):
    """SPEC §10 `margin` row: per customer, billing period and currency."""

    customer_id: str
    name: str | None
    billing_period: str
    currency: Currency
    revenue: Amount
    cost: Amount
    margin: Amount
    margin_percent: str | None


class Escalation(BaseModel):
    vehicle: str
    microsoft_case_id: str | None
    at: Timestamp


class SupportTicket(Row):
    """SPEC §6 `support` row."""

    ticket_id: str
    customer_id: str
    status: Literal["open", "escalated", "resolved"]
    category: str | None
    severity: str | None
    channel: str | None
    opened_at: Timestamp | None
    resolved_at: Timestamp | None
    minutes: int
    billable_minutes: int
    escalations: list[Escalation]


class TrialBalanceRow(Row):
    """SPEC §6 `trial-balance` row."""

    account: str
    currency: Currency
    debit: Amount
    credit: Amount
    balance: Amount
