"""Reconciliation with Microsoft (SPEC §7): read a Partner Center new-commerce billed invoice
reconciliation file and match its lines with the ledger's `ChargePosted` events.

Parsing tolerates column order, a UTF-8 BOM, quoted fields (commas, newlines), CRLF and
extra columns; anything else wrong (a missing required column, a bad number or date, mixed
invoice numbers or currencies) is one `ReconFileError` naming the line and the column, before
anything is recorded.

A line matches a charge with the same key: CustomerId = customer_id, SubscriptionId =
subscription_id, ChargeStartDate/ChargeEndDate = charge_start/charge_end, and ChargeType mapped
to the ledger's charge_type (`CHARGE_TYPES`). Its `Subtotal` (the partner's pre-tax cost) is
compared with the charge's `cost`. The charges are read once per run and indexed by that key,
so a file of 10,000 lines costs one pass over the charges and one over the lines.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NamedTuple

from ledger.app.recon_source import ReconFileError, ReconFileSource, decode, text_lines
from ledger.domain.errors import Conflict, InvalidMessage, LedgerError
from ledger.domain.events import LedgerEvent
from ledger.domain.hashchain import canonical_json
from ledger.domain.ids import normalize_id
from ledger.domain.money import check_currency, decimals_of, fmt, minor_unit

if TYPE_CHECKING:
    from ledger.app.application import LedgerApplication

# Microsoft's ChargeType values (compared case-, space-, '_' and '-'-insensitively) → the
# ledger's charge_type (SPEC §3, §10). Partner Center writes them as "new", "renew",
# "cycleCharge", "addQuantity", "removeQuantity", "cancelImmediate", "convert", "usage",
# "customerCredit", … (and in the UI as "Cycle charge", "Cancel immediate", …).
#   new, purchase, activation(Fee) ................ a purchase                → new
#   addQuantity .................................... added seats               → add_quantity
#   removeQuantity ................................. seats removed (credit)    → remove_quantity
#   renew, renewal ................................. term renewal              → renew
#   cycleCharge, cycleFee, cycle ................... monthly charge of a term  → cycle
#   usage, usageFee, consumption ................... metered (Azure) usage     → usage
#   oneTime, oneTimePurchase ....................... reservations, software    → one_time
#   cancelImmediate, cancel, refund, credit ........ prorated credit back      → cancel_refund
#   convert ......................................... an upgrade (either sign) → convert
#   customerCredit ................................. Microsoft's credit        → customer_credit
# An unknown ChargeType matches nothing: the line is reported as missing in the ledger.
CHARGE_TYPES: dict[str, str] = {
    "new": "new", "purchase": "new", "addquantity": "add_quantity", "activation": "new",
    "activationfee": "new", "renew": "renew", "renewal": "renew", "cyclecharge": "cycle",
    "cyclefee": "cycle", "cycle": "cycle", "usage": "usage", "usagefee": "usage",
    "consumption": "usage", "onetime": "one_time", "onetimepurchase": "one_time",
    "cancelimmediate": "cancel_refund", "cancel": "cancel_refund",
    "removequantity": "remove_quantity", "refund": "cancel_refund", "credit": "cancel_refund",
    "convert": "convert", "customercredit": "customer_credit",
}  # fmt: skip
# Before the new-commerce charge types existed upstream systems posted these lines under the
# older types; a charge of the older type still matches such a line (after the exact type).
LEGACY_CHARGE_TYPES: dict[str, tuple[str, ...]] = {
    "add_quantity": ("new",), "remove_quantity": ("cancel_refund",),
    "convert": ("new", "cancel_refund"), "customer_credit": ("cancel_refund",),
}  # fmt: skip

REQUIRED_COLUMNS = (
    "InvoiceNumber", "CustomerId", "SubscriptionId", "ChargeType", "ChargeStartDate",
    "ChargeEndDate", "Subtotal", "Currency",
)  # fmt: skip
OPTIONAL_COLUMNS = ("ProductId", "SkuId", "CustomerName")
# Kept as written on each line (`ReconLine.extra`) for `ledger bill partner-center` (SPEC §10).
BILLING_COLUMNS = (
    "OrderId", "AvailabilityId", "SkuName", "ProductName", "UnitPrice", "Quantity",
    "BillableQuantity", "EffectiveUnitPrice", "SubscriptionDescription", "TermAndBillingCycle",
    "BillingFrequency", "MeterDescription", "ReservationOrderId", "CreditReasonCode",
    "PriceAdjustmentDescription", "ChargeType",
)  # fmt: skip

# ASCII digits only (a Unicode \d reads "٣" as 3) and matched with fullmatch (a `$` lets a
# final newline through). A time after the date is allowed, and only a time.
_NUMBER_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_TIME = (
    r"(?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"  # 12:00, 12:00:00, 12:00:00.000
    r"(?: ?[AaPp][Mm])?(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"  # AM/PM, Z or an offset
)
_US_DATE_RE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})" + _TIME, re.ASCII)
_ISO_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})" + _TIME, re.ASCII)
# Plain decimals (UnitPrice, Quantity, exchange rates: SPEC §2) take up to this many places;
# money (Subtotal) takes the currency's ISO 4217 minor unit.
MAX_PLAIN_DECIMALS = 18


def charge_type_of(ms_charge_type: str, subtotal: Decimal) -> str | None:
    """The ledger's charge_type for a Microsoft ChargeType value (None when unknown)."""
    normal = re.sub(r"[\s_-]+", "", ms_charge_type).lower()
    return CHARGE_TYPES.get(normal)


# ---- the file ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReconLine:
    line: int
    customer_id: str
    subscription_id: str
    product_id: str
    sku_id: str
    ms_charge_type: str
    charge_type: str | None
    charge_start: date
    charge_end: date
    subtotal: Decimal
    # BILLING_COLUMNS present in the file, stripped; not part of matching.
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, date, date, str | None]:
        return (self.customer_id, self.subscription_id, self.charge_start, self.charge_end,
                self.charge_type)  # fmt: skip

    def to_json(self, currency: str) -> dict[str, Any]:
        return {
            "line": self.line,
            "customer_id": self.customer_id,
            "subscription_id": self.subscription_id,
            "product_id": self.product_id,
            "sku_id": self.sku_id,
            "charge_type": self.ms_charge_type,
            "charge_start": self.charge_start.isoformat(),
            "charge_end": self.charge_end.isoformat(),
            "subtotal": fmt(self.subtotal, currency),
        }


@dataclass(frozen=True)
class ReconFile:
    invoice_number: str
    currency: str
    lines: list[ReconLine]
    sha256: str  # of the file's bytes (what imports before content identity recorded)

    @property
    def line_digests(self) -> list[str]:
        """Each line's content digest (`line_digest`), in file order."""
        return [line_digest(line) for line in self.lines]

    @property
    def content_sha256(self) -> str:
        """The identity of the import (SPEC §7): invoice number, currency and the multiset
        of its lines' content; never the bytes, column order, quoting or line order."""
        return content_sha256(self.invoice_number, self.currency, self.lines)

    @property
    def total(self) -> Decimal:
        """The invoice amount: the sum of the lines' Subtotal (pre-tax cost)."""
        return sum((line.subtotal for line in self.lines), Decimal(0))

    def billing_period(self) -> str:
        """The month most lines start in (ties: the earliest)."""
        months = Counter(line.charge_start.strftime("%Y-%m") for line in self.lines)
        best = max(months.values())
        return min(month for month, count in months.items() if count == best)


# ---- the identity of an import ------------------------------------------------------------
# What the ledger reads of a line, normalised, is its content: two files that differ only in
# column order, extra columns, BOM, line endings, quoting, date form (1/31/2025 = 2025-01-31),
# ChargeType spelling ("Cycle charge" = cycleCharge) or number form ("1.5" = "1.50") are the same
# invoice. Fixed list, fixed form: a stored identity must not change when the parser grows.
LINE_DIGEST_CHARS = 12  # 48 bits: names a differing line; the full content hash decides


def _canonical_decimal(value: Decimal) -> str:
    """One text per value: 1.5, 1.50 and +1.500 are "1.5"; 0 and -0.00 are "0"."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def line_content(line: ReconLine) -> list[str]:
    """The normalised content of a line: the columns the ledger reads."""
    return [
        normalize_id(line.customer_id), normalize_id(line.subscription_id), line.product_id,
        line.sku_id, re.sub(r"[\s_-]+", "", line.ms_charge_type).lower(),
        line.charge_start.isoformat(), line.charge_end.isoformat(),
        _canonical_decimal(line.subtotal),
    ]  # fmt: skip


def _line_sha256(line: ReconLine) -> str:
    return hashlib.sha256(canonical_json(line_content(line)).encode("utf-8")).hexdigest()


def line_digest(line: ReconLine) -> str:
    """A short digest of a line's content (stored per line to name the first one that
    differs when the same invoice number comes back with other lines)."""
    return _line_sha256(line)[:LINE_DIGEST_CHARS]


def content_sha256(invoice_number: str, currency: str, lines: Iterable[ReconLine]) -> str:
    """sha256 of the invoice number, currency and the sorted digests of every line."""
    body = {"invoice_number": invoice_number, "currency": currency,
            "lines": sorted(_line_sha256(line) for line in lines)}  # fmt: skip
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def describe_line(line: ReconLine) -> str:
    return (
        f"line {line.line} (CustomerId {line.customer_id}, SubscriptionId "
        f"{line.subscription_id}, ChargeType {line.ms_charge_type}, {line.charge_start} to "
        f"{line.charge_end}, Subtotal {line.subtotal})"
    )


def check_same_import(known: dict[str, Any], recon: ReconFile) -> None:
    """Return when `recon` is the invoice `known` recorded (its MicrosoftInvoiceRecorded
    data); else raise Conflict naming the first line of the file that the recorded import
    does not have (or how many of its lines the file lacks).

    Imports recorded before content identity (only `file_sha256`) are recognised by their
    exact bytes only: failing closed, a reformatted file of such an invoice is refused."""
    number = recon.invoice_number
    if "content_sha256" not in known:
        if known["file_sha256"] == recon.sha256:
            return
        raise Conflict(
            f"invoice_number: {number} was imported from another file (sha256 "
            f"{known['file_sha256'][:12]}…, period {known['billing_period']}) before imports "
            "were identified by content; only that exact file is the same import",
            field="invoice_number",
        )
    if known["content_sha256"] == recon.content_sha256:
        return
    prefix = f"invoice_number: {number} was already imported with other lines"
    if known.get("currency") not in (None, recon.currency):
        raise Conflict(f"{prefix}: its currency was {known['currency']}, this file's is "
                       f"{recon.currency}", field="Currency")  # fmt: skip
    recorded = Counter(known.get("line_digests") or ())
    for line in recon.lines:
        digest = line_digest(line)
        if recorded[digest] > 0:
            recorded[digest] -= 1
            continue
        raise Conflict(f"{prefix}: {describe_line(line)} is not on the recorded import",
                       field="invoice_number")  # fmt: skip
    lacking = sum(recorded.values())
    raise Conflict(
        f"{prefix}: this file has {len(recon.lines)} lines and lacks {lacking} of the "
        f"{known.get('line_count', '?')} recorded",
        field="invoice_number",
    )


def _parse_number(
    text: str, line: int, column: str, max_decimals: int | None = MAX_PLAIN_DECIMALS
) -> Decimal:
    """A decimal cell. Raises ReconFileError naming the rule broken: not a number, or more
    than `max_decimals` decimals (None: the caller checks them, e.g. against a currency)."""
    value = text.strip()
    if not _NUMBER_RE.fullmatch(value):
        raise ReconFileError(f"{text!r} is not a number", line=line, column=column)
    try:
        number = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex already guards this
        raise ReconFileError(f"{text!r} is not a number", line=line, column=column) from None
    if max_decimals is not None and decimals_of(number) > max_decimals:
        raise ReconFileError(f"{value} has {decimals_of(number)} decimals, at most "
                             f"{max_decimals}", line=line, column=column)  # fmt: skip
    return number


def _parse_money(text: str, currency: str, line: int, column: str) -> Decimal:
    """A money cell: at most the currency's ISO 4217 minor-unit decimals (SPEC §2)."""
    number = _parse_number(text, line, column, max_decimals=None)
    if decimals_of(number) > minor_unit(currency):
        raise ReconFileError(f"{text.strip()} has {decimals_of(number)} decimals, at most "
                             f"{minor_unit(currency)} for {currency}", line=line,
                             column=column)  # fmt: skip
    return number


def _parse_date(text: str, line: int, column: str) -> date:
    """ISO dates (2025-01-31, 2025-01-31T00:00:00Z) or Partner Center's US form (1/31/2025,
    1/31/2025 12:00:00 AM)."""
    value = text.strip()
    try:
        if found := _ISO_DATE_RE.fullmatch(value):
            return date(int(found[1]), int(found[2]), int(found[3]))
        if found := _US_DATE_RE.fullmatch(value):
            return date(int(found[3]), int(found[1]), int(found[2]))
    except ValueError:
        pass
    raise ReconFileError(f"{text!r} is not a date (YYYY-MM-DD or M/D/YYYY)", line=line,
                         column=column)  # fmt: skip


def _delimiter(text: str) -> str:
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", "\t", ";")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def _owned_lines(
    lines: Iterable[str], owners: bytes, owner: int, numbers: list[int]
) -> Iterator[str]:
    """The header and the lines `owners` gives `owner` (see ReconReader.lines), their
    numbers in the file appended to `numbers`."""
    found = iter(lines)
    yield next(found, "")
    for number, line in enumerate(found, start=2):
        if number <= len(owners) and owners[number - 1] == owner:
            numbers.append(number)
            yield line


NOBODY = b"\xff"  # the owner of a header or blank line (ReconReader.lines)
# Distinct texts a reader remembers (Subtotals; ids and other cells): ~100-200 bytes each. Past
# that, ids and cells start afresh (a column of values that never repeat, such as OrderId,
# would otherwise keep every line's).
AMOUNTS_KEPT = 65_536
SHARED_KEPT = 32_768


class _Columns(NamedTuple):
    """Where a line's cells are (the header's positions)."""

    invoice: int
    currency: int
    subtotal: int
    start: int
    end: int
    charge_type: int
    customer: int
    subscription: int
    product: int | None
    sku: int | None


class ReconReader:
    """A reconciliation file read one line at a time (SPEC §7): the header is checked when
    the reader is made, each line as it is read (ReconFileError naming line and column, the
    same errors in the same order as parse_recon_file). `invoice_number` and `currency` are
    the file's once a line was read.

    What repeats on every line (dates, ChargeType spellings, GUIDs of customers and
    subscriptions, product names) is parsed once per distinct text, and the currency checked
    once per file: a 100,000-line file has a few hundred of each."""

    def __init__(
        self, text: str | ReconFileSource, *, owners: bytes | None = None,
        owner: int | None = None,
    ) -> None:  # fmt: skip
        # `text`: the file's text, or the file on disk read as it goes (recon_source). With
        # `owners` (filled by lines(owner_of=...) over the same file): only the header and the
        # physical lines of `owner` are read, numbered as in the file.
        self._numbers: list[int] | None = None
        lines = text_lines(text) if isinstance(text, str) else text.lines()
        first = next(lines, "")
        source: Iterable[str] = itertools.chain((first,) if first else (), lines)
        if owners is not None and owner is not None:
            self._numbers = [1]
            source = _owned_lines(source, owners, owner, self._numbers)
        self._reader = csv.reader(source, delimiter=_delimiter(first), strict=True)
        try:
            header = [name.strip() for name in next(self._reader)]
        except StopIteration:
            raise ReconFileError("the file is empty", line=1) from None
        except csv.Error as exc:
            raise ReconFileError(f"unreadable CSV header ({exc})", line=1) from None
        index: dict[str, int] = {}
        for position, name in enumerate(header):
            if name in index and name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
                raise ReconFileError("appears twice in the header", line=1, column=name)
            index.setdefault(name, position)
        missing = [name for name in REQUIRED_COLUMNS if name not in index]
        if missing:
            raise ReconFileError(
                f"required column missing from the header (missing: {', '.join(missing)})",
                line=1, column=missing[0],
            )  # fmt: skip
        self.header = header
        self._index = index
        self._at = _Columns(
            index["InvoiceNumber"], index["Currency"], index["Subtotal"],
            index["ChargeStartDate"], index["ChargeEndDate"], index["ChargeType"],
            index["CustomerId"], index["SubscriptionId"], index.get("ProductId"),
            index.get("SkuId"),
        )  # fmt: skip
        self._extra = [(name, index[name]) for name in BILLING_COLUMNS if name in index]
        self.invoice_number: str | None = None
        self.currency: str | None = None
        # One object per distinct text (see the class docstring), SHARED_KEPT at most: a
        # reader streaming 100,000 lines kept every line's OrderId and SubscriptionId (~25 MB).
        self._shared: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._dates: dict[str, date] = {}
        self._types: dict[str, str | None] = {}
        self._amounts: dict[str, Decimal] = {}  # Subtotal texts already read

    def lines(
        self,
        keep: Callable[[str], bool] | None = None,
        *,
        extra: bool = True,
        owners: bytearray | None = None,
        owner_of: Callable[[str], int] | None = None,
    ) -> Iterator[ReconLine]:
        """The file's lines, in order. With `keep` (given a line's CustomerId as the ledger
        spells it), only the lines it keeps are parsed past their field count: for a file
        already read whole once (every line checked), split between processes. `extra=False`
        leaves `ReconLine.extra` empty (a pass that only checks the file). With `owner_of`
        (CustomerId as the ledger spells it -> a number 0-254), `owners` (one byte a
        physical line of the text) gets each line's number on every physical line it spans,
        for a reader of one owner's lines (`ReconReader(text, owner=...)`)."""
        reader, header, index = self._reader, self.header, self._index
        width = len(header)
        customer_at = index["CustomerId"]
        numbers = self._numbers
        start = reader.line_num + 1
        owned: dict[str, bytes] = {}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                where = numbers[start - 1] if numbers and start <= len(numbers) else start
                raise ReconFileError(f"unreadable CSV ({exc})", line=where) from None
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != width:
                raise ReconFileError(
                    f"has {len(row)} fields, the header has {width} (an unquoted comma?)",
                    line=numbers[line - 1] if numbers is not None else line,
                    column=header[min(len(row), width) - 1],
                )  # fmt: skip
            if keep is not None and not keep(self._id(row[customer_at].strip())):
                continue
            if numbers is not None:
                line = numbers[line - 1]
            parsed = self._line(row, line, extra)
            if owner_of is not None and owners is not None:
                mark = owned.get(parsed.customer_id)
                if mark is None:
                    mark = owned[parsed.customer_id] = bytes((owner_of(parsed.customer_id),))
                if len(owners) < line - 1:  # blank lines before it: nobody's
                    owners.extend(NOBODY * (line - 1 - len(owners)))
                owners[line - 1 : start - 1] = mark * (start - line)
            yield parsed

    def _id(self, text: str) -> str:
        known = self._ids.get(text)
        if known is None:
            if len(self._ids) >= SHARED_KEPT:
                self._ids.clear()
            known = self._ids[text] = normalize_id(text)
        return known

    @staticmethod
    def _empty(line: int, name: str) -> str:
        raise ReconFileError("is empty", line=line, column=name)

    def _date(self, text: str, line: int, name: str) -> date:
        known = self._dates.get(text)
        if known is None:
            if not text:
                self._empty(line, name)
            known = self._dates[text] = _parse_date(text, line, name)
        return known

    def _money(self, text: str, currency: str, line: int) -> Decimal:
        known = self._amounts.get(text)
        if known is None:
            known = _parse_money(text or self._empty(line, "Subtotal"), currency, line,
                                 "Subtotal")  # fmt: skip
            if len(self._amounts) < AMOUNTS_KEPT:
                self._amounts[text] = known
        return known

    def _line(self, row: list[str], line: int, extra: bool = True) -> ReconLine:
        # The cells by position (the columns' order is the header's); the checks in a
        # fixed order, so the first error of a line is always the same one.
        at = self._at
        number = row[at.invoice].strip() or self._empty(line, "InvoiceNumber")
        if number != self.invoice_number:
            if self.invoice_number is not None:
                raise ReconFileError(
                    f"{number!r} differs from the file's invoice {self.invoice_number!r} (one "
                    "invoice per file)",
                    line=line, column="InvoiceNumber",
                )  # fmt: skip
            self.invoice_number = number
        line_currency = row[at.currency].strip()
        if line_currency != self.currency:  # the file's, as written: the usual case
            line_currency = (line_currency or self._empty(line, "Currency")).upper()
        if line_currency != self.currency:
            try:
                check_currency(line_currency)
            except LedgerError:
                raise ReconFileError(f"{line_currency!r} is not an ISO 4217 code",
                                     line=line, column="Currency") from None  # fmt: skip
            if self.currency is not None:
                raise ReconFileError(
                    f"{line_currency} differs from the file's currency {self.currency}",
                    line=line, column="Currency",
                )  # fmt: skip
            self.currency = line_currency
        # Cached per text for one currency: the file's only (checked above).
        subtotal = self._money(row[at.subtotal].strip(), line_currency, line)
        charge_start = self._date(row[at.start].strip(), line, "ChargeStartDate")
        charge_end = self._date(row[at.end].strip(), line, "ChargeEndDate")
        if charge_end < charge_start:
            raise ReconFileError(f"{charge_end} is before ChargeStartDate {charge_start}",
                                 line=line, column="ChargeEndDate")  # fmt: skip
        ms_type = row[at.charge_type].strip() or self._empty(line, "ChargeType")
        types = self._types
        if ms_type in types:
            charge_type = types[ms_type]
        else:
            charge_type = types[ms_type] = charge_type_of(ms_type, subtotal)
        customer = row[at.customer].strip() or self._empty(line, "CustomerId")
        subscription = row[at.subscription].strip() or self._empty(line, "SubscriptionId")
        shared = self._shared
        if len(shared) >= SHARED_KEPT:
            shared.clear()
        product = row[at.product].strip() if at.product is not None else ""
        sku = row[at.sku].strip() if at.sku is not None else ""
        return ReconLine(
            line,
            # GUIDs in either case are one id (SPEC §2): both sides of the match agree.
            self._id(customer),
            self._id(subscription),
            shared.setdefault(product, product),
            shared.setdefault(sku, sku),
            shared.setdefault(ms_type, ms_type),
            charge_type,
            charge_start,
            charge_end,
            subtotal,
            {name: shared.setdefault(value, value) for name, i in self._extra
             if (value := row[i].strip())} if extra else {},
        )  # fmt: skip


def read_recon_text(raw: bytes) -> str:
    """The file's text (UTF-8, a BOM dropped). Raises ReconFileError naming the line of the
    first byte that is not UTF-8."""
    return decode(raw)


def parse_recon_file(raw: bytes) -> ReconFile:
    """Parse a whole reconciliation file. Raises ReconFileError (line, column) when malformed."""
    reader = ReconReader(decode(raw))
    lines = list(reader.lines())
    if reader.invoice_number is None or reader.currency is None:
        raise ReconFileError("the file has a header but no lines", line=2)
    return ReconFile(reader.invoice_number, reader.currency, lines, hashlib.sha256(raw).hexdigest())


# ---- the ledger's charges ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerCharge:
    charge_id: str
    customer_id: str
    subscription_id: str
    charge_type: str
    charge_start: date
    charge_end: date
    cost: Decimal
    currency: str
    billing_period: str
    ms_invoice_number: str | None

    @property
    def key(self) -> tuple[str, str, date, date, str | None]:
        return (self.customer_id, self.subscription_id, self.charge_start, self.charge_end,
                self.charge_type)  # fmt: skip


def ledger_charges(events: Iterable[LedgerEvent]) -> list[LedgerCharge]:
    """The ChargePosted events as match candidates."""
    return [
        LedgerCharge(
            charge_id=d["charge_id"],
            customer_id=normalize_id(e.customer_id),  # streams registered before SPEC §2
            subscription_id=normalize_id(d["subscription_id"]),
            charge_type=d["charge_type"],
            charge_start=date.fromisoformat(d["charge_start"]),
            charge_end=date.fromisoformat(d["charge_end"]),
            cost=Decimal(d["cost"]),
            currency=d.get("cost_currency") or d["currency"],  # Microsoft's billing currency
            billing_period=d["billing_period"],
            ms_invoice_number=d.get("ms_invoice_number"),
        )
        for e in events
        for d in (e.data,)
    ]


# ---- matching ---------------------------------------------------------------------------------


@dataclass
class LineResult:
    """One row of the line-level report (`--csv`)."""

    status: str  # matched, amount_mismatch, missing_in_ledger, missing_on_invoice
    line: ReconLine | None = None
    charge: LedgerCharge | None = None


@dataclass
class ReconReport:
    invoice_number: str
    billing_period: str
    currency: str
    invoice_total: Decimal
    results: list[LineResult] = field(default_factory=list)

    @property
    def matched(self) -> int:
        """Lines paired with a ledger charge (amount differences included)."""
        return sum(1 for r in self.results if r.status in ("matched", "amount_mismatch"))

    def of(self, status: str) -> list[LineResult]:
        return [r for r in self.results if r.status == status]

    def to_json(self) -> dict[str, Any]:
        """Exactly the SPEC §7 shape."""
        cur = self.currency
        return {
            "invoice_number": self.invoice_number,
            "billing_period": self.billing_period,
            "currency": cur,
            "invoice_total": fmt(self.invoice_total, cur),
            "matched": self.matched,
            "missing_in_ledger": [
                r.line.to_json(cur) for r in self.of("missing_in_ledger") if r.line
            ],
            "missing_on_invoice": [
                r.charge.charge_id for r in self.of("missing_on_invoice") if r.charge
            ],
            "amount_mismatches": [
                {
                    "charge_id": r.charge.charge_id,
                    "ledger_cost": fmt(r.charge.cost, cur),
                    "invoice_subtotal": fmt(r.line.subtotal, cur),
                }
                for r in self.of("amount_mismatch")
                if r.charge and r.line
            ],
        }

    def summary(self) -> dict[str, Any]:
        """What the ReconciliationRecorded event keeps (the SPEC §7 report)."""
        doc = self.to_json()
        return {k: doc[k] for k in ("invoice_total", "matched", "missing_in_ledger",
                                    "missing_on_invoice", "amount_mismatches")}  # fmt: skip

    def csv_rows(self) -> list[dict[str, Any]]:
        """The line-level report: every line of the file, then the charges it lacks."""
        cur = self.currency
        rows = []
        for r in self.results:
            line, charge = r.line, r.charge
            item = line or charge
            assert item is not None
            rows.append({
                "status": r.status,
                "line": line.line if line else "",
                "invoice_number": self.invoice_number,
                "customer_id": item.customer_id,
                "subscription_id": item.subscription_id,
                "ms_charge_type": line.ms_charge_type if line else "",
                "charge_type": item.charge_type or "",
                "charge_start": item.charge_start.isoformat(),
                "charge_end": item.charge_end.isoformat(),
                "invoice_subtotal": fmt(line.subtotal, cur) if line else "",
                "charge_id": charge.charge_id if charge else "",
                "ledger_cost": fmt(charge.cost, cur) if charge else "",
                "difference": fmt(line.subtotal - charge.cost, cur) if line and charge else "",
                "billing_period": charge.billing_period if charge else "",
            })  # fmt: skip
        return rows


CSV_COLUMNS = (
    "status", "line", "invoice_number", "customer_id", "subscription_id", "ms_charge_type",
    "charge_type", "charge_start", "charge_end", "invoice_subtotal", "charge_id", "ledger_cost",
    "difference", "billing_period",
)  # fmt: skip


def reconcile(
    recon: ReconFile, charges: Sequence[LedgerCharge], billing_period: str | None = None
) -> ReconReport:
    """Match the file's lines with the ledger's charges.

    Within one key, lines take a charge of the same cost first, then any charge left (an
    amount mismatch); lines left over are missing in the ledger. Charges of the invoice's
    billing period and currency that no line took (those with a cost, not named on another
    Microsoft invoice) are missing on the invoice.
    """
    period = billing_period or recon.billing_period()
    candidates: dict[tuple[str, str, date, date, str | None], list[LedgerCharge]] = {}
    for charge in charges:
        if charge.currency != recon.currency or charge.ms_invoice_number not in (
            None, recon.invoice_number,
        ):  # fmt: skip
            continue
        candidates.setdefault(charge.key, []).append(charge)

    # Three passes over the lines, the pools shared so a charge is taken once: a charge of
    # the line's type and the same cost; one of a legacy type (LEGACY_CHARGE_TYPES) and the
    # same cost; then any charge left of the type, then of a legacy type (amount mismatch).
    def pools(line: ReconLine, legacy: bool) -> list[list[LedgerCharge]]:
        if not legacy:
            return [candidates.get(line.key, [])]
        olds = LEGACY_CHARGE_TYPES.get(line.charge_type or "", ())
        return [candidates.get((*line.key[:4], old), []) for old in olds]

    def take(line: ReconLine, chosen: list[list[LedgerCharge]], same_cost: bool) -> Any:
        for pool in chosen:
            for charge in pool:
                if not same_cost or charge.cost == line.subtotal:
                    pool.remove(charge)
                    return charge
        return None

    outcome: dict[int, LineResult] = {}
    for legacy in (False, True):
        for line in recon.lines:
            if line.line not in outcome and (found := take(line, pools(line, legacy), True)):
                outcome[line.line] = LineResult("matched", line, found)
    for line in recon.lines:
        if line.line in outcome:
            continue
        found = take(line, pools(line, False) + pools(line, True), False)
        outcome[line.line] = (
            LineResult("amount_mismatch", line, found) if found
            else LineResult("missing_in_ledger", line)
        )  # fmt: skip
    taken = {r.charge.charge_id for r in outcome.values() if r.charge}

    report = ReconReport(recon.invoice_number, period, recon.currency, recon.total)
    report.results = [outcome[line.line] for line in recon.lines]
    missing = sorted(
        (
            c for c in charges
            if c.billing_period == period and c.currency == recon.currency and c.cost != 0
            and c.charge_type != "support" and c.charge_id not in taken
            and c.ms_invoice_number in (None, recon.invoice_number)
        ),
        key=lambda c: c.charge_id,
    )  # fmt: skip
    report.results += [LineResult("missing_on_invoice", charge=c) for c in missing]
    return report


def write_csv(report: ReconReport, handle: io.TextIOBase | Any) -> None:
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report.csv_rows())


def invoice_record(
    recon: ReconFile, report: ReconReport, invoice_date: date, due_date: date
) -> dict[str, Any]:
    """The data of the MicrosoftInvoiceRecorded event."""
    return {
        "invoice_number": recon.invoice_number,
        "billing_period": report.billing_period,
        "currency": recon.currency,
        "amount": fmt(recon.total, recon.currency),
        "invoice_date": invoice_date.isoformat(),
        "due_date": due_date.isoformat(),
        "file_sha256": recon.sha256,
        "line_count": len(recon.lines),
        "content_sha256": recon.content_sha256,
        "line_digests": recon.line_digests,
    }


def day_after(period: str) -> date:
    year, month = (int(p) for p in period.split("-"))
    return date(year + month // 12, month % 12 + 1, 1)


@dataclass(frozen=True)
class ImportResult:
    recon: ReconFile
    report: ReconReport
    invoice_date: date
    due_date: date
    recorded: bool


def import_recon_file(
    app: LedgerApplication,
    raw: bytes,
    *,
    payment_terms_days: int,
    billing_period: str | None = None,
    invoice_date: date | None = None,
    due_date: date | None = None,
) -> ImportResult:
    """Parse, match and record one reconciliation file (`ledger reconcile`).

    Invoice date: the first day after the billing period unless given; due date: invoice
    date + `payment_terms_days` unless given. The same invoice again (same number and line
    content, whatever the bytes) records nothing. Raises ReconFileError (malformed file:
    nothing recorded) and Conflict (the invoice number was imported before with other
    lines; the message names the first line that differs).
    """
    recon = parse_recon_file(raw)
    report = reconcile(recon, ledger_charges(app.charge_events()), billing_period)
    try:
        invoice_day = invoice_date or day_after(report.billing_period)
        due_day = due_date or invoice_day + timedelta(days=payment_terms_days)
    except (OverflowError, ValueError):  # past 9999-12-31: a refusal, never a traceback
        raise InvalidMessage(
            f"invoice_date: the invoice or due date of period {report.billing_period} falls "
            "after 9999-12-31",
            field="invoice_date",
        ) from None
    known = app.recorded_microsoft_invoice(recon.invoice_number)
    if known is not None:  # the same invoice again: nothing to record, or a conflict
        check_same_import(known, recon)
        return ImportResult(recon, report, invoice_day, due_day, recorded=False)
    recorded = app.record_microsoft_invoice(
        invoice_record(recon, report, invoice_day, due_day), report.summary(), invoice_day
    )
    if recorded:  # book the invoice (SPEC §11): cost trued up, unallocated money applied
        from ledger.app.microsoft import settle_after_invoice

        settle_after_invoice(app, report.billing_period, recon.currency, invoice_day)
    return ImportResult(recon, report, invoice_day, due_day, recorded)
