"""Xero's sales-invoice import CSV (SPEC §12): one row per invoice line.

Columns, names and order as Xero's own import template for sales invoices (Xero Central,
"Import invoices": Business > Invoices > Import > Download template). The field rules used
here are Xero's as its guides reproduce them: ContactName, InvoiceNumber, InvoiceDate,
DueDate, Description, Quantity, UnitAmount, AccountCode and TaxType are required; lines of
one invoice share its InvoiceNumber; dates in the organisation's format (DD/MM/YYYY, or
MM/DD/YYYY in the US); TaxType is the tax rate's display name as Xero shows it; amounts are
either all tax exclusive or all tax inclusive (these are exclusive: choose "Tax exclusive"
when importing); Total and TaxAmount are calculated by Xero when left empty (TaxAmount given
here overrides it, so Xero's tax equals the ledger's, rounded once per invoice). Sources:
https://online.flippingbook.com/view/399081/31/ (a Xero guide's field list) and
https://docs.milientsoftware.com/help/moment-by-topic/integrations/file-exports/file-export-accounting-system/xero/xero-templates
(the template's column names). Xero's import takes up to 500 invoices per file.

The lines are the invoice document's (`ledger.documents.model.invoice_document`): the charges
the invoice billed. Amounts are Decimal strings, never floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.app.exports.invoices import period_invoices
from ledger.documents.model import Invoice, InvoiceLine, invoice_document
from ledger.domain.errors import LedgerError
from ledger.domain.money import decimals_of, fmt, quantize
from projections.base import Event, utc_instant

XERO_COLUMNS = (
    "ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3",
    "POAddressLine4", "POCity", "PORegion", "POPostalCode", "POCountry", "InvoiceNumber",
    "Reference", "InvoiceDate", "DueDate", "Total", "InventoryItemCode", "Description",
    "Quantity", "UnitAmount", "Discount", "AccountCode", "TaxType", "TaxAmount",
    "TrackingName1", "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency",
    "BrandingTheme",
)  # fmt: skip
DATE_FORMATS = {"DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y"}
DEFAULT_DATE_FORMAT = "DD/MM/YYYY"
# Xero's default chart of accounts codes sales income as 200 ("Sales").
DEFAULT_ACCOUNT_CODE = "200"
# Xero's names of its default sales tax rates in a US organisation; a UK one has e.g.
# "20% (VAT on Income)" and "No VAT" (set them with the options).
DEFAULT_TAX_TYPE = "Tax on Sales"
DEFAULT_NO_TAX_TYPE = "Tax Exempt"
# Xero keeps unit amounts to 4 decimal places; a finer unit price goes as one line amount.
UNIT_DECIMALS = 4
ZERO = Decimal(0)


class XeroExportError(LedgerError):
    """An invoice whose lines do not add up to its subtotal (it would import wrong)."""

    code = "export_mismatch"


@dataclass(frozen=True)
class XeroOptions:
    account_code: str = DEFAULT_ACCOUNT_CODE
    tax_type: str = DEFAULT_TAX_TYPE
    no_tax_type: str = DEFAULT_NO_TAX_TYPE
    date_format: str = DEFAULT_DATE_FORMAT


@dataclass
class XeroReport:
    """Invoices written, and those left out with why (void; a credit invoice, which Xero
    takes as a credit note, not a sales invoice)."""

    invoices: int = 0
    rows: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def xero_rows(
    streams: Iterable[list[Event]], period: str, options: XeroOptions, report: XeroReport
) -> Iterator[dict[str, str]]:
    """Rows (XERO_COLUMNS) of every sales invoice of billing period `period`, customer by
    customer. Raises XeroExportError when an invoice's lines do not sum to its subtotal."""
    for events, invoice in period_invoices(streams, period):
        if invoice["status"] == "void":
            report.skipped.append((invoice["invoice_id"], "void"))
            continue
        if Decimal(invoice["total"]) < 0:
            report.skipped.append((invoice["invoice_id"], "credit invoice (a credit note)"))
            continue
        rows = invoice_rows(invoice_document(events, invoice["invoice_id"]),
                            contact_of(events), options)  # fmt: skip
        report.invoices += 1
        report.rows += len(rows)
        yield from rows


@dataclass(frozen=True)
class Contact:
    """The customer's postal address (its lines) and country, when recorded."""

    address_lines: tuple[str, ...]
    country: str


def contact_of(events: list[Event]) -> Contact:
    """The latest `address` and `country` of the customer's registration and updates, by
    business time as the accounts view takes updates (older stores have neither: empty)."""
    latest: dict[str, Any] = {}
    updates = [e for e in events if e["event_type"] in ("CustomerRegistered", "CustomerUpdated")]
    for event in sorted(updates, key=lambda e: utc_instant(e["occurred_at"])):
        for name in ("address", "country"):
            if event["data"].get(name) is not None:
                latest[name] = event["data"][name]
    address = str(latest.get("address") or "")
    lines = [part.strip() for part in address.splitlines() if part.strip()]
    if len(lines) > 4:  # Xero has four address lines: the rest joins the fourth
        lines = [*lines[:3], ", ".join(lines[3:])]
    return Contact(tuple(lines), str(latest.get("country") or ""))


def invoice_rows(invoice: Invoice, contact: Contact, options: XeroOptions) -> list[dict[str, str]]:
    """One row per line of `invoice`, with its share of the invoice's tax."""
    currency = invoice.currency
    lines = invoice.lines or [InvoiceLine("(no lines)", None, None, Decimal(1), ZERO, ZERO)]
    billed = sum((line.amount for line in lines), ZERO)
    if billed != invoice.subtotal:
        raise XeroExportError(
            f"invoice {invoice.invoice_id}: its lines sum to {fmt(billed, currency)} "
            f"{currency}, its subtotal is {fmt(invoice.subtotal, currency)}",
            field="invoice_id",
        )
    taxes = line_taxes([line.amount for line in lines], invoice.tax, currency)
    tax_type = options.tax_type if invoice.tax != 0 else options.no_tax_type
    when = DATE_FORMATS[options.date_format]
    address = contact.address_lines + ("",) * (4 - len(contact.address_lines))
    rows = []
    for line, tax in zip(lines, taxes, strict=True):
        quantity, unit_amount, description = _priced(line, currency)
        rows.append({
            "ContactName": invoice.customer.name, "EmailAddress": invoice.customer.email or "",
            "POAddressLine1": address[0], "POAddressLine2": address[1],
            "POAddressLine3": address[2], "POAddressLine4": address[3],
            "POCity": "", "PORegion": "", "POPostalCode": "", "POCountry": contact.country,
            "InvoiceNumber": invoice.invoice_id, "Reference": invoice.customer.customer_id,
            "InvoiceDate": date.fromisoformat(invoice.invoice_date).strftime(when),
            "DueDate": date.fromisoformat(invoice.due_date).strftime(when),
            "Total": fmt(invoice.total, currency), "InventoryItemCode": "",
            "Description": description, "Quantity": quantity, "UnitAmount": unit_amount,
            "Discount": "", "AccountCode": options.account_code, "TaxType": tax_type,
            "TaxAmount": fmt(tax, currency), "TrackingName1": "", "TrackingOption1": "",
            "TrackingName2": "", "TrackingOption2": "", "Currency": currency,
            "BrandingTheme": "",
        })  # fmt: skip
    return rows


def _priced(line: InvoiceLine, currency: str) -> tuple[str, str, str]:
    """(Quantity, UnitAmount, Description) whose product Xero computes as exactly the line's
    amount: quantity x unit price when that is the amount, else 1 x the amount (a prorated
    or finely priced line), its quantity and unit price then named in the description."""
    description = line.description
    if line.period_start and line.period_end:
        description += f" ({line.period_start} to {line.period_end})"
    quantity, unit = line.quantity, line.unit_price
    exact = quantity * unit == line.amount and max(decimals_of(unit), decimals_of(quantity)) \
        <= UNIT_DECIMALS  # fmt: skip
    if exact and quantity != 0:
        return _plain(quantity), _plain(unit), description
    return "1", fmt(line.amount, currency), f"{description}: {_plain(quantity)} x {_plain(unit)}"


def _plain(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros beyond the point ("25", "22.5")."""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def line_taxes(amounts: list[Decimal], tax: Decimal, currency: str) -> list[Decimal]:
    """`tax` shared out over the lines in proportion to their amounts, half-even to the
    minor unit; the largest line takes the rounding so the shares sum to `tax` exactly."""
    if not amounts:
        return []
    subtotal = sum(amounts, ZERO)
    if tax == 0 or subtotal == 0:
        return [ZERO] * len(amounts) if tax == 0 else [tax] + [ZERO] * (len(amounts) - 1)
    largest = max(range(len(amounts)), key=lambda i: abs(amounts[i]))
    shares = [quantize(tax * amount / subtotal, currency) for amount in amounts]
    shares[largest] = tax - (sum(shares, ZERO) - shares[largest])
    return shares
