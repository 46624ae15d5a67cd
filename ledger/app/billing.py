"""Bill customers from Microsoft's own data (SPEC §10): `ledger bill partner-center`.

Each line of a Partner Center new-commerce invoice reconciliation file (read by the §7 parser,
`ledger.app.reconcile.ReconReader`: the whole file checked first, then billed as it is read
again, a batch at a time) becomes one SPEC §3 `charge` message priced by the
partner's price book (`ledger.domain.pricebook`). The messages go through the normal ingest
path — the caller's `send` — so validation, idempotency and dead letters are those of any
upstream charge:

- `charge_id` (= `message_id`) is ``"pc-" + sha256(invoice number, the line's identity, n)[:40]``
  where the identity is the line's own columns in canonical form (ids lower-cased when GUIDs,
  numbers normalised, dates ISO: any column order, date format or quoting gives the same id)
  and ``n`` counts identical lines before it (two identical lines are two charges). Billing
  the same file twice therefore posts nothing the second time: every line is a duplicate.
- `occurred_at` is the charge start at 00:00 UTC (deterministic, so a re-run is a duplicate,
  never a `conflict`).
- `cost` = Subtotal as written (never re-rounded), `cost_currency` = Currency, `quantity` =
  BillableQuantity (else Quantity), `billing_period` = `--period` or the file's (§7).
- A ChargeType the ledger does not know, and a customer billed in a currency the price book has
  no `[fx]` rate for, are `not_billed` with the reason; nothing is guessed. A line of a
  customer that is not registered goes to ingest all the same and becomes the dead letter
  `unknown_customer` (replayable once the customer is registered); it is listed in
  `not_billed` too, with its dead-letter code.

No Kafka, database driver, HTTP or CLI here: the command passes `send` (ingest in-process, or
publish to `billing.charges`) and the customer lookup.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from ledger.app.decisions import APPLIED, Decision
from ledger.app.ingest import IngestCounts, RawRecord
from ledger.app.recon_source import FileIdentity, ReconFileSource
from ledger.app.reconcile import ReconFile, ReconFileError, ReconLine, ReconReader, read_recon_text
from ledger.domain.ids import normalize_id
from ledger.domain.money import fmt, quantize
from ledger.domain.pricebook import (
    NotBillable,
    PriceBook,
    PricingInput,
    annual_billing,
)

if TYPE_CHECKING:
    from ledger.domain.account import CustomerAccount

log = structlog.get_logger(__name__)

BATCH = 1000  # messages per `send` (one ingest transaction)
AMOUNTS_KEPT = 65_536  # distinct amounts a ChargeIds remembers in canonical form


@dataclass(frozen=True)
class CustomerInfo:
    """What billing needs of a registered customer: its currency and the charges it has."""

    currency: str
    known_charges: Container[str] = frozenset()


CustomerLookup = Callable[[str], CustomerInfo | None]
Send = Callable[[list[RawRecord]], IngestCounts]
# Message ids -> the decisions recorded on them (LedgerApplication.select_decisions).
DecisionLookup = Callable[[list[str]], Mapping[str, Decision]]


def lookup_from_accounts(find: Callable[[str], CustomerAccount | None]) -> CustomerLookup:
    """A CustomerLookup over the event store (`LedgerApplication.find`), cached per customer,
    with the charge ids each customer has (duplicates known without ingesting); only the ids
    are kept, not the accounts. Each account is replayed once: for small stores (the demo,
    tests). `ledger bill` reads registrations only and asks the recorded decisions instead
    (`bill_text(decided=...)`)."""
    cache: dict[str, CustomerInfo | None] = {}

    def lookup(customer_id: str) -> CustomerInfo | None:
        if customer_id not in cache:
            account = find(customer_id)
            if account is None:
                cache[customer_id] = None
            else:
                known = frozenset(account.facts.get("charge", ()))
                cache[customer_id] = CustomerInfo(account.currency, known)
        return cache[customer_id]

    return lookup


def lookup_from_registrations(
    registration: Callable[[str], dict[str, Any] | None],
) -> CustomerLookup:
    """A CustomerLookup that reads only each customer's registration
    (`LedgerApplication.registration`, cached per customer): its currency, no charges. What
    billing through ingest needs (ingest itself tells duplicates), without replaying every
    customer's stream (a second run over 100,000 charges: ~300 MB less)."""
    cache: dict[str, CustomerInfo | None] = {}

    def lookup(customer_id: str) -> CustomerInfo | None:
        if customer_id not in cache:
            data = registration(customer_id)
            cache[customer_id] = None if data is None else CustomerInfo(data["currency"])
        return cache[customer_id]

    return lookup


def _number(text: str) -> Decimal | None:
    """A number of the file ('12', "'12.50": a leading apostrophe is Excel's text marker)."""
    value = text.strip().lstrip("'").strip()
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{text!r} is not a number")
    return number


# The same few texts (quantities, unit prices, billing cycles) come back on most lines: each
# is read once.
_annual = functools.lru_cache(maxsize=256)(annual_billing)


@functools.lru_cache(maxsize=4096)
def _canon_number(text: str) -> str:
    try:
        number = _number(text)
    except ValueError:
        return text.strip()
    if number is None:
        return ""
    return "0" if number.is_zero() else format(number.normalize(), "f")


def _plain(number: Decimal) -> str:
    """'6.9' for 6.900000 (no exponent, no trailing zeros)."""
    return "0" if number.is_zero() else format(number.normalize(), "f")


@functools.lru_cache(maxsize=1024)
def _canon_charge_type(ms_charge_type: str) -> str:
    return re.sub(r"[\s_-]+", "", ms_charge_type).lower()


def line_identity(invoice_number: str, line: ReconLine) -> str:
    """The canonical text of what makes a line itself (see the module docstring): its fields
    in a fixed order, separated by the ASCII unit separator (never in a CSV cell we read)."""
    return _identity(invoice_number, line, _iso_date, _plain)


def _identity(
    invoice_number: str, line: ReconLine, iso: Callable[[date], str],
    plain: Callable[[Decimal], str],
) -> str:  # fmt: skip
    # The line's parsed key fields, then the columns that make its identity (SPEC §7 names),
    # in this order for good: the ids stored by earlier runs are made of it.
    get, canon = line.extra.get, normalize_id
    return "\x1f".join((
        invoice_number, canon(line.customer_id), canon(line.subscription_id),
        line.product_id, line.sku_id, _canon_charge_type(line.ms_charge_type),
        iso(line.charge_start), iso(line.charge_end), plain(line.subtotal),
        canon(get("OrderId", "")), canon(get("AvailabilityId", "")),
        canon(get("MeterDescription", "")), canon(get("ReservationOrderId", "")),
        canon(get("CreditReasonCode", "")), canon(get("PriceAdjustmentDescription", "")),
        _canon_number(get("UnitPrice", "")), _canon_number(get("Quantity", "")),
        _canon_number(get("BillableQuantity", "")),
        _canon_number(get("EffectiveUnitPrice", "")),
    ))  # fmt: skip


def _iso_date(day: date) -> str:
    return day.isoformat()


class ChargeIds:
    """The deterministic charge id of each line, given in file order: the identity's digest
    and how many identical lines came before it (counted on digests: 32 bytes a line, not
    the text). Identical lines have the same customer, so the lines of some customers only,
    in file order, get the ids the whole file gives them. What repeats from line to line
    (dates, amounts) is put in canonical form once."""

    def __init__(self, invoice_number: str) -> None:
        self.invoice_number = invoice_number
        self._seen: Counter[bytes] = Counter()
        self._dates: dict[date, str] = {}
        self._amounts: dict[Decimal, str] = {}

    def _iso(self, day: date) -> str:
        known = self._dates.get(day)
        if known is None:
            known = self._dates[day] = day.isoformat()
        return known

    def _plain(self, amount: Decimal) -> str:
        known = self._amounts.get(amount)
        # Equal amounts of other exponents (1.5, 1.50) have one canonical text.
        if known is None:
            known = _plain(amount)
            if len(self._amounts) < AMOUNTS_KEPT:
                self._amounts[amount] = known
        return known

    def __call__(self, line: ReconLine) -> str:
        identity = _identity(self.invoice_number, line, self._iso, self._plain)
        digest = hashlib.sha256(identity.encode()).digest()
        self._seen[digest] += 1
        return "pc-" + hashlib.sha256(digest + b"#%d" % self._seen[digest]).hexdigest()[:40]


def charge_ids(recon: ReconFile) -> list[str]:
    """The charge id of each line of a file, in file order (see ChargeIds)."""
    ids = ChargeIds(recon.invoice_number)
    return [ids(line) for line in recon.lines]


# ---- the report -------------------------------------------------------------------------------


@dataclass
class CustomerTotals:
    customer_id: str
    currency: str
    lines: int = 0
    cost: Decimal = Decimal(0)  # in `currency`, exact (converted at each line's rate)
    amount: Decimal = Decimal(0)
    below_min_margin: list[int] = field(default_factory=list)

    @property
    def rounded_cost(self) -> Decimal:
        return quantize(self.cost, self.currency)

    @property
    def margin(self) -> Decimal:
        return self.amount - self.rounded_cost

    def margin_percent(self) -> str | None:
        if not self.amount:
            return None
        percent = self.margin / self.amount * 100
        return str(percent.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))

    def to_json(self) -> dict[str, Any]:
        cur = self.currency
        return {
            "customer_id": self.customer_id, "currency": cur, "lines": self.lines,
            "cost": fmt(self.rounded_cost, cur), "amount": fmt(self.amount, cur),
            "margin": fmt(self.margin, cur), "margin_percent": self.margin_percent(),
            "below_min_margin": self.below_min_margin,
        }  # fmt: skip


@dataclass
class BillingReport:
    """SPEC §10's report. `billed`: charges posted now (published, with Kafka); `duplicates`:
    lines already billed; `not_billed`: [{line, reason}] (unknown ChargeType, missing FX rate,
    dead letters such as `unknown_customer`)."""

    invoice_number: str
    billing_period: str
    lines: int
    billed: int = 0
    duplicates: int = 0
    not_billed: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, CustomerTotals] = field(default_factory=dict)
    dry_run: bool = False
    published: bool = False

    def totals(self) -> dict[str, Any]:
        """Sums over the customers: in their currency when they share one; per currency (and
        null sums) when they do not, as amounts of different currencies never add up."""
        by_currency: dict[str, list[Decimal]] = {}
        for row in self.customers.values():
            sums = by_currency.setdefault(row.currency, [Decimal(0)] * 3)
            sums[0] += row.rounded_cost
            sums[1] += row.amount
            sums[2] += row.margin
        rows = [
            {"currency": cur, "cost": fmt(s[0], cur), "amount": fmt(s[1], cur),
             "margin": fmt(s[2], cur)}
            for cur, s in sorted(by_currency.items())
        ]  # fmt: skip
        if len(rows) == 1:
            return rows[0]
        return {"currency": None, "cost": None, "amount": None, "margin": None,
                "by_currency": rows}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "invoice_number": self.invoice_number,
            "billing_period": self.billing_period,
            "lines": self.lines,
            "billed": self.billed,
            "duplicates": self.duplicates,
            "not_billed": sorted(self.not_billed, key=lambda n: n["line"]),
            "customers": [self.customers[c].to_json() for c in sorted(self.customers)],
            "totals": self.totals(),
        }


# ---- billing ----------------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: made once a line, at a third of a frozen one's cost
class PlannedCharge:
    line: int
    customer_id: str
    charge_id: str
    message: dict[str, Any]
    cost_in_currency: Decimal
    amount: Decimal
    currency: str
    below_min_margin: bool
    known: bool  # the customer is registered
    duplicate: bool  # already posted (known in the event store)


def _description(line: ReconLine) -> str:
    extra = line.extra
    for name in ("SubscriptionDescription", "SkuName", "ProductName"):
        if extra.get(name):
            return extra[name]
    return f"Microsoft {line.ms_charge_type} {line.product_id}/{line.sku_id}".strip()


def _quantity(extra: Mapping[str, str]) -> tuple[Decimal, str]:
    """(BillableQuantity, else Quantity, else 0; its wire text). Raises ValueError."""
    for name in ("BillableQuantity", "Quantity"):
        value = _cached_quantity(extra.get(name, ""))
        if value is not None:
            return value
    return _ZERO_QUANTITY


@functools.lru_cache(maxsize=4096)
def _cached_quantity(text: str) -> tuple[Decimal, str] | None:
    number = _number(text)
    return None if number is None else (number, format(number, "f"))


_ZERO_QUANTITY = (Decimal(0), "0")


def plan(
    recon: ReconFile,
    book: PriceBook,
    customers: CustomerLookup,
    *,
    billing_period: str | None = None,
    not_billed: list[dict[str, Any]] | None = None,
    lines: Sequence[ReconLine] | None = None,
    ids: Sequence[str] | None = None,
) -> tuple[str, list[PlannedCharge], list[dict[str, Any]]]:
    """(billing period, the charge of every billable line, not_billed [{line, reason}]) of
    the file, or of some of its `lines` (with their `ids`, from charge_ids of the file)."""
    period = billing_period or recon.billing_period()
    skipped: list[dict[str, Any]] = [] if not_billed is None else not_billed
    chosen = recon.lines if lines is None else lines
    chosen_ids = charge_ids(recon) if ids is None else ids
    planned = plan_lines(FileSummary(recon.invoice_number, recon.currency, len(recon.lines),
                                     period), book, customers, chosen, chosen_ids,
                         skipped)  # fmt: skip
    return period, planned, skipped


def plan_lines(
    summary: FileSummary,
    book: PriceBook,
    customers: CustomerLookup,
    lines: Sequence[ReconLine],
    ids: Sequence[str],
    not_billed: list[dict[str, Any]],
) -> list[PlannedCharge]:
    """The charge of every billable line of `lines` (with their charge ids), billed for
    `summary.billing_period`; the others appended to `not_billed` [{line, reason}]."""
    period, skipped = summary.billing_period, not_billed
    planned: list[PlannedCharge] = []
    invoice_number, file_currency = summary.invoice_number, summary.currency
    # What repeats from line to line (a customer's id, registration and currency; the ISO
    # text of a date) is worked out once per batch: ~1/3 of pricing's time a line.
    who: dict[str, tuple[str, CustomerInfo | None, str]] = {}
    iso: dict[date, str] = {}
    for line, charge_id in zip(lines, ids, strict=True):
        if line.charge_type is None:
            skipped.append({"line": line.line, "reason": (
                f"unknown ChargeType {line.ms_charge_type!r}: not one the ledger knows (SPEC "
                "§10), never guessed")})  # fmt: skip
            continue
        found = who.get(line.customer_id)
        if found is None:
            customer_id = normalize_id(line.customer_id)
            info = customers(customer_id)
            # An unregistered customer's line still goes to ingest (dead letter
            # unknown_customer, replayable later): priced in Microsoft's currency meanwhile.
            found = who[line.customer_id] = (customer_id, info,
                                             info.currency if info else file_currency)  # fmt: skip
        customer_id, info, currency = found
        start, end = line.charge_start, line.charge_end
        start_text = iso.get(start) or iso.setdefault(start, start.isoformat())
        end_text = iso.get(end) or iso.setdefault(end, end.isoformat())
        extra = line.extra
        try:
            quantity, quantity_text = _quantity(extra)
            priced = book.price(PricingInput(
                customer_id, currency, line.product_id, line.sku_id, line.charge_type,
                line.subtotal, file_currency, quantity, start, end,
                _annual(extra.get("BillingFrequency", ""), extra.get("TermAndBillingCycle", "")),
            ))  # fmt: skip
        except NotBillable as exc:
            skipped.append({"line": line.line, "reason": exc.message})
            continue
        except ValueError as exc:
            skipped.append({"line": line.line, "reason": f"BillableQuantity/Quantity: {exc}"})
            continue
        message = {
            "message_id": charge_id,
            "type": "charge",
            "customer_id": customer_id,
            "occurred_at": f"{start_text}T00:00:00Z",
            "charge_id": charge_id,
            "subscription_id": normalize_id(line.subscription_id),
            "product_id": line.product_id,
            "sku_id": line.sku_id,
            "description": _description(line),
            "charge_type": line.charge_type,
            "quantity": quantity_text,
            "unit_price": _plain(priced.unit_price),
            "amount": format(priced.amount, "f"),
            "currency": currency,
            "cost": format(line.subtotal, "f"),  # Microsoft's Subtotal as written
            "billing_period": period,
            "charge_start": start_text,
            "charge_end": end_text,
            "ms_invoice_number": invoice_number,
            "ms_charge_type": line.ms_charge_type,
            "cost_currency": file_currency,
        }
        if priced.cost_fx_rate is not None:
            message["cost_fx_rate"] = format(priced.cost_fx_rate, "f")
        planned.append(PlannedCharge(
            line.line, customer_id, charge_id, message, priced.cost_in_currency, priced.amount,
            currency, priced.below_min_margin, info is not None,
            info is not None and charge_id in info.known_charges,
        ))  # fmt: skip
    return planned


def _deliver(
    planned: list[PlannedCharge], send: Send | None, delivered: bool, source: str,
    report: BillingReport, decided: DecisionLookup | None,
) -> dict[int, str]:  # fmt: skip
    """Send one batch (unless a dry run) and count it; returns {line: reason} of the lines
    that became dead letters (or will, with Kafka: customers not registered)."""
    dead: dict[int, str] = {}
    if send is not None and delivered:
        counts = send([_record(item, source) for item in planned])
        report.billed += counts.applied
        report.duplicates += counts.duplicate
        for letter in counts.dead_letters:
            assert letter.offset is not None
            dead[letter.offset] = f"dead letter {letter.code}: {letter.message}"
        for letter in counts.refusals:  # refused when this file was billed before (decided once)
            assert letter.offset is not None
            dead.setdefault(letter.offset, f"refused before ({letter.code}): {letter.message}")
        return dead
    # Dry run, or published for `ledger consume`: what ingest will find, from the store as
    # it is now — the decision recorded on each charge id (one query a batch, SPEC §3), the
    # charges a lookup knows, whether the customer is registered.
    known = decided([item.charge_id for item in planned]) if decided is not None else {}
    records = []
    for item in planned:
        prior = known.get(item.charge_id)
        if prior is not None and prior.outcome != APPLIED:
            dead[item.line] = f"refused before ({prior.code}): {prior.reason}"
            continue
        if prior is not None or item.duplicate:
            report.duplicates += 1
            continue
        if item.known:
            report.billed += 1
        else:
            dead[item.line] = (f"dead letter unknown_customer: customer_id: "
                               f"{item.customer_id!r} is not registered")  # fmt: skip
        records.append(_record(item, source))
    if send is not None and records:
        send(records)
    return dead


def _record(item: PlannedCharge, source: str) -> RawRecord:
    # The message goes with its JSON (orjson: every value is a string, ~1 us instead of ~8);
    # ingest validates the message itself, without decoding the JSON again.
    return RawRecord(value=orjson.dumps(item.message).decode(), source=source,
                     offset=item.line, key=item.customer_id, decoded=item.message)  # fmt: skip


@dataclass(frozen=True)
class FileSummary:
    """What billing needs of the whole file before its first line is sent."""

    invoice_number: str
    currency: str
    lines: int
    billing_period: str  # --period, else the month most lines start in (ties: the earliest)
    # With scan_file(shards=N): each physical line's share (0..N-1, 255 for none), so a
    # worker reads only its own lines (ReconReader(owners=...)).
    owners: bytes | None = field(default=None, repr=False, compare=False)
    shares: int = 1  # the N of `owners`
    # A file read from disk: what it was when checked (billing it refuses another: FileChanged).
    file: FileIdentity | None = None


def _source(text: str | Path, expected: FileIdentity | None = None) -> str | ReconFileSource:
    return text if isinstance(text, str) else ReconFileSource(text, expected)


def scan_file(
    text: str | Path, billing_period: str | None = None, *, shards: int = 1
) -> FileSummary:
    """Read every line of the file (its text, or the file at a path, read as it goes) once,
    checking it as parse_recon_file does, and keep only counts: a malformed file raises
    ReconFileError before anything is sent, and the lines are then billed as they are read
    again (a 100,000-line file is never held parsed; from a path, never held at all). With
    `shards` > 1 (at most 255), each line's share (`share_of` its customer) is noted in
    `owners`."""
    if not 1 <= shards < 255:
        raise ValueError(f"shards: {shards} is not in 1..254")
    read_from = _source(text)
    reader = ReconReader(read_from)
    months: Counter[tuple[int, int]] = Counter()
    owners = bytearray() if shards > 1 else None
    owner_of = functools.partial(share_of, shares=shards) if shards > 1 else None
    for line in reader.lines(extra=False, owners=owners, owner_of=owner_of):
        start = line.charge_start
        months[start.year, start.month] += 1
    if reader.invoice_number is None or reader.currency is None:
        raise ReconFileError("the file has a header but no lines", line=2)
    if billing_period is None:
        best = max(months.values())
        year, month = min(key for key, count in months.items() if count == best)
        billing_period = f"{year:04d}-{month:02d}"
    return FileSummary(reader.invoice_number, reader.currency, sum(months.values()),
                       billing_period, bytes(owners) if owners is not None else None,
                       shards, read_from.identity if isinstance(read_from, ReconFileSource)
                       else None)  # fmt: skip


def share_of(customer_id: str, shares: int) -> int:
    """A customer's share of a file billed by `shares` processes: stable across processes
    and runs (unlike hash()), the split `ledger rebuild --workers` uses."""
    return zlib.crc32(customer_id.encode()) % shares


class BillingStopped(RuntimeError):
    """Billing was stopped between two batches (`stop` said so): every batch sent before is
    complete, the rest is billed by running the same file again."""


def bill_text(
    text: str | Path,
    summary: FileSummary,
    book: PriceBook,
    customers: CustomerLookup,
    send: Send | None,
    *,
    source: str = "partner-center",
    progress: Callable[[int, int], None] | None = None,
    delivered: bool = True,
    decided: DecisionLookup | None = None,
    keep: Callable[[str], bool] | None = None,
    share: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> BillingReport:
    """Bill the lines of a file `scan_file` read (`summary`): its text, or the file at a path
    (read again as it goes; FileChanged when it is not the file scan_file read), one batch of
    BATCH lines at a time: parsed, priced, sent, summed and let go. `keep` (given a customer
    id) bills only some customers' lines, as a share of the file (ledger.app.billing_shards):
    `lines` of the report is still the file's. `share` (with a summary of
    scan_file(shards=N)) bills the lines of that share, reading no other line. `decided`
    (message ids -> recorded decisions, e.g. LedgerApplication.select_decisions) tells a dry
    run and Kafka what ingest would find. `stop` is asked before each batch; True raises
    BillingStopped."""
    report = BillingReport(summary.invoice_number, summary.billing_period, summary.lines,
                           dry_run=send is None, published=not delivered)  # fmt: skip
    ids = ChargeIds(summary.invoice_number)
    batch: list[ReconLine] = []

    def bill_batch() -> None:
        if stop is not None and stop():
            raise BillingStopped("billing stopped between two batches")
        planned = plan_lines(summary, book, customers, batch, [ids(line) for line in batch],
                             report.not_billed)  # fmt: skip
        dead = _deliver(planned, send, delivered, source, report, decided)
        for item in planned:
            if item.line in dead:
                report.not_billed.append({"line": item.line, "reason": dead[item.line]})
                continue
            totals = report.customers.get(item.customer_id)
            if totals is None:
                totals = report.customers[item.customer_id] = CustomerTotals(
                    item.customer_id, item.currency
                )
            totals.lines += 1
            totals.cost += item.cost_in_currency
            totals.amount += item.amount
            if item.below_min_margin:
                totals.below_min_margin.append(item.line)
        if progress:
            progress(len(batch), summary.lines)
        batch.clear()

    read_from = _source(text, summary.file)
    if share is not None and summary.owners is not None:
        reader = ReconReader(read_from, owners=summary.owners, owner=share)
    else:
        reader = ReconReader(read_from)
    for line in reader.lines(keep):
        batch.append(line)
        if len(batch) == BATCH:
            bill_batch()
    if batch:
        bill_batch()
    return report


def bill_file(
    raw: bytes,
    book: PriceBook,
    customers: CustomerLookup,
    send: Send | None,
    *,
    source: str = "partner-center",
    billing_period: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    delivered: bool = True,
    decided: DecisionLookup | None = None,
) -> BillingReport:
    """Bill one file in this process. `send=None` is a dry run: everything is priced and
    reported, nothing is sent. `delivered=False` (Kafka): `send` publishes, so outcomes are
    not known here — `billed` counts what was published and dead letters appear on
    `billing.deadletter`. Raises ReconFileError for a malformed file (nothing sent)."""
    text = read_recon_text(raw)
    summary = scan_file(text, billing_period)
    report = bill_text(text, summary, book, customers, send, source=source, progress=progress,
                       delivered=delivered, decided=decided)  # fmt: skip
    log_report(report)
    return report


def log_report(report: BillingReport) -> None:
    log.info("billing.done", invoice_number=report.invoice_number,
             billing_period=report.billing_period, lines=report.lines, billed=report.billed,
             duplicates=report.duplicates, not_billed=len(report.not_billed),
             dry_run=report.dry_run)  # fmt: skip


def published_counts(records: Sequence[RawRecord]) -> IngestCounts:
    """What a publishing `send` returns: every record counted as billed (its outcome is
    `ledger consume`'s)."""
    return IngestCounts(applied=len(records))


__all__ = [
    "BillingReport",
    "BillingStopped",
    "ChargeIds",
    "CustomerInfo",
    "CustomerTotals",
    "FileSummary",
    "bill_file",
    "bill_text",
    "charge_ids",
    "line_identity",
    "log_report",
    "lookup_from_accounts",
    "lookup_from_registrations",
    "plan",
    "plan_lines",
    "published_counts",
    "scan_file",
    "share_of",
]
