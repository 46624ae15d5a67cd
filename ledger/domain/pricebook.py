"""The partner's price book (SPEC §10): what a customer pays for a line of Microsoft's invoice.

A CSP partner buys from Microsoft at `cost` (the reconciliation file's `Subtotal`) and sells at
its own price: a markup on cost, a fixed price per unit, special prices per customer, protected
for a term. This module is pure: the TOML arrives as text (`load_price_book`), no file or
environment is read here.

Shape (TOML)::

    [defaults]
    markup_percent = "15"            # or unit_price; optional min_margin_percent

    [[rules]]                        # every key optional; one of markup_percent | unit_price
    customer_id = "…"
    product_id = "CFQ7TTC0LH18"
    sku_id = "0001"
    charge_types = ["usage"]         # the ledger's charge types (SPEC §3)
    valid_from = "2026-01-01"        # compared with the line's charge start (inclusive)
    valid_to = "2026-12-31"          # inclusive
    markup_percent = "10"
    min_margin_percent = "5"

    [fx]                             # units of the customer currency per unit of cost currency
    "USD->EUR" = "0.92"

Rule precedence (most specific first): customer+SKU > customer+product > customer > SKU >
product > charge types only > defaults. Among rules of the same level, one that also names
charge types wins, then the first in the file. A rule that does not match the line (another
customer, product, SKU, charge type, or a charge start outside its validity) is skipped.

Prices:

- markup: ``amount = round_half_even(cost x (1 + markup_percent / 100) x fx_rate)``
- fixed unit price (in the customer's currency, for one full billing cycle):
  ``amount = round_half_even(unit_price x |quantity| x covered_days / cycle_days)``, signed
  like ``cost`` (a credit line, negative Subtotal, becomes a negative amount at the same
  rule), where ``covered_days = charge_end - charge_start + 1`` (Microsoft's charge dates are
  inclusive) and ``cycle_days`` is the length of the billing cycle that ends on the line's
  charge end: ``(charge_end + 1 day) - (charge_end + 1 day - one cycle)``; a cycle is one
  month, or one year for annual billing (the file's BillingFrequency / TermAndBillingCycle).
  Usage and one-time lines are not prorated (``covered_days / cycle_days = 1``).
  Worked example: 36.00 per seat per month, 10 seats, a line from 2026-01-20 to 2026-02-09
  of a cycle 2026-01-10..2026-02-09 (31 days), covering 21 days:
  36.00 x 10 x 21 / 31 = 243.870967… → 243.87.

Rounding: once, half-even to the customer currency's ISO 4217 minor unit. Microsoft's cost is
never rounded again. Errors: `PriceBookError` (one line naming the rule index and key) for a
malformed book; `NotBillable` for a line the book cannot price (no FX rate).
"""

from __future__ import annotations

import calendar
import functools
import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ledger.domain.errors import LedgerError
from ledger.domain.money import minor_unit

__all__ = [
    "CHARGE_TYPES",
    "NotBillable",
    "PriceBook",
    "PriceBookError",
    "PricedLine",
    "PricingInput",
    "annual_billing",
    "load_price_book",
    "price_book_from",
    "prorated_fraction",
]

# The ledger's charge types a rule may name (SPEC §3).
CHARGE_TYPES = frozenset({
    "new", "renew", "cycle", "usage", "one_time", "support", "cancel_refund", "add_quantity",
    "remove_quantity", "convert", "customer_credit",
})  # fmt: skip
# Lines billed per use or once: a fixed unit price is not prorated by days.
NOT_PRORATED = frozenset({"usage", "one_time"})
MAX_PRICE_DECIMALS = 6  # the charge message's unit_price limit
PRICE_QUANTUM = Decimal(1).scaleb(-MAX_PRICE_DECIMALS)
HUNDRED = Decimal(100)


class PriceBookError(LedgerError):
    """The price book is malformed: nothing may be priced or posted with it."""

    code = "invalid_price_book"


class NotBillable(LedgerError):
    """The price book cannot price this line (e.g. no FX rate): report it, never guess."""

    code = "not_billed"


# ---- validation -----------------------------------------------------------------------------


def _decimal(value: object) -> Decimal:
    """A decimal given as a TOML string ("15") or integer (15); floats are not exact."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f'must be a decimal string such as "15", got {value!r}')
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _day(value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}")


Dec = Annotated[Decimal, BeforeValidator(_decimal)]
Day = Annotated[date, BeforeValidator(_day)]


class _Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    markup_percent: Dec | None = None
    unit_price: Dec | None = None
    min_margin_percent: Dec | None = None

    @model_validator(mode="after")
    def _one_price(self) -> _Price:
        if (self.markup_percent is None) == (self.unit_price is None):
            raise ValueError("give exactly one of markup_percent or unit_price")
        if self.markup_percent is not None and self.markup_percent <= -100:
            raise ValueError("markup_percent must be > -100 (a price below zero)")
        if self.unit_price is not None:
            if self.unit_price < 0:
                raise ValueError("unit_price must be >= 0")
            exponent = self.unit_price.as_tuple().exponent
            assert isinstance(exponent, int)
            if -exponent > MAX_PRICE_DECIMALS:
                raise ValueError(f"unit_price has more than {MAX_PRICE_DECIMALS} decimals")
        return self


class Defaults(_Price):
    pass


class Rule(_Price):
    customer_id: str | None = None
    product_id: str | None = None
    sku_id: str | None = None
    charge_types: list[str] | None = None
    valid_from: Day | None = None
    valid_to: Day | None = None

    @model_validator(mode="after")
    def _rule(self) -> Rule:
        for name in ("customer_id", "product_id", "sku_id"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(f"{name} must not be empty")
        if self.charge_types is not None:
            if not self.charge_types:
                raise ValueError("charge_types must not be empty (leave it out to match all)")
            unknown = sorted(set(self.charge_types) - CHARGE_TYPES)
            if unknown:
                raise ValueError(
                    f"charge_types: {unknown[0]!r} is not one of {', '.join(sorted(CHARGE_TYPES))}"
                )
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self

    @property
    def level(self) -> int:
        """6 customer+SKU, 5 customer+product, 4 customer, 3 SKU, 2 product, 1 charge types."""
        if self.customer_id is not None:
            return 6 if self.sku_id else 5 if self.product_id else 4
        return 3 if self.sku_id else 2 if self.product_id else 1

    def matches_key(self, key: tuple[str, str, str, str]) -> bool:
        """The rule matches a line but for its dates (`covers`), on what a rule reads of a
        line: (customer_id, product_id, sku_id, charge_type)."""
        customer_id, product_id, sku_id, charge_type = key
        return (
            self.customer_id in (None, customer_id)
            and self.product_id in (None, product_id)
            and self.sku_id in (None, sku_id)
            and (self.charge_types is None or charge_type in self.charge_types)
        )

    def covers(self, charge_start: date) -> bool:
        """The rule's price holds for a charge starting on `charge_start` (price protection:
        valid_from and valid_to are inclusive, by charge start)."""
        return (self.valid_from is None or charge_start >= self.valid_from) and (
            self.valid_to is None or charge_start <= self.valid_to
        )


class _Book(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: Defaults | None = None
    rules: list[Rule] = []
    fx: dict[str, Dec] = {}


def _location(loc: tuple[int | str, ...]) -> str:
    """'rules[2].markup_percent' from pydantic's ('rules', 2, 'markup_percent')."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "price book"


def load_price_book(text: str, source: str = "price book") -> PriceBook:
    """Parse and validate a TOML price book. Raises PriceBookError naming the rule and key
    ("price.toml: rules[2].markup_percent: ...") — one error, before anything is priced."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceBookError(f"{source}: not valid TOML ({exc})") from None
    return price_book_from(raw, source)


def price_book_from(raw: dict[str, Any], source: str = "price book") -> PriceBook:
    try:
        book = _Book.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = _location(first["loc"])
        if first["type"] == "extra_forbidden":
            detail = "unknown key"
        else:
            detail = str(first["msg"]).removeprefix("Value error, ")
        raise PriceBookError(f"{source}: {where}: {detail}", field=where) from None
    rates: dict[tuple[str, str], Decimal] = {}
    for pair, rate in book.fx.items():
        parts = pair.split("->")
        if len(parts) != 2 or not all(len(p) == 3 and p.isascii() and p.isupper() for p in parts):
            raise PriceBookError(f"{source}: fx.{pair}: must be written \"USD->EUR\"",
                                 field=f"fx.{pair}")  # fmt: skip
        if rate <= 0:
            raise PriceBookError(f"{source}: fx.{pair}: the rate must be > 0", field=f"fx.{pair}")
        rates[(parts[0], parts[1])] = rate
    return PriceBook(book.defaults, tuple(book.rules), rates)


# ---- pricing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricingInput:
    """One line of Microsoft's file as the price book sees it.

    `cost`: Microsoft's Subtotal in `cost_currency` (exact, never rounded again);
    `quantity`: BillableQuantity (else Quantity); `annual`: the line is billed yearly.
    """

    customer_id: str
    currency: str  # the customer's billing currency
    product_id: str
    sku_id: str
    charge_type: str
    cost: Decimal
    cost_currency: str
    quantity: Decimal
    charge_start: date
    charge_end: date
    annual: bool = False


@dataclass(frozen=True, slots=True)
class PricedLine:
    """The customer price of a line: `amount` in `currency` (rounded to its minor unit),
    `unit_price` ≥ 0 (≤ 6 decimals), `cost_fx_rate` (None when no conversion), `cost_in_currency`
    (exact), `below_min_margin` and which rule priced it (`rule`: index, or None: defaults)."""

    amount: Decimal
    unit_price: Decimal
    cost_fx_rate: Decimal | None
    cost_in_currency: Decimal
    below_min_margin: bool
    rule: int | None


def _add_cycle(day: date, months: int) -> date:
    """`day` moved back by `months` months, the day clamped to the month's length."""
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def prorated_fraction(charge_start: date, charge_end: date, *, annual: bool = False) -> Decimal:
    """covered_days / cycle_days of a line (see the module docstring), exact."""
    covered = (charge_end - charge_start).days + 1
    after = charge_end + timedelta(days=1)
    cycle_days = (after - _add_cycle(after, 12 if annual else 1)).days
    return Decimal(covered) / Decimal(cycle_days)


@functools.cache
def _minor_quantum(currency: str) -> Decimal:
    """0.01 for USD, 1 for JPY: the step a currency's amounts are rounded to."""
    return Decimal(1).scaleb(-minor_unit(currency))


def _round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_minor_quantum(currency), rounding=ROUND_HALF_EVEN)


def _rule_key(line: PricingInput) -> tuple[str, str, str, str]:
    return line.customer_id, line.product_id, line.sku_id, line.charge_type


# Rule candidates remembered (a few hundred bytes each), then forgotten: one per (customer,
# product, SKU, charge type) met, a few thousand in a 100,000-line file.
RULE_CACHE_SIZE = 16_384


@dataclass(frozen=True)
class PriceBook:
    defaults: Defaults | None
    rules: tuple[Rule, ...]
    fx: dict[tuple[str, str], Decimal]
    # The rule chosen for each (customer, product, SKU, charge type, charge start) met so
    # far: the rules matching it but for their dates, most specific first. A file repeats them
    # line after line (the book never changes once loaded); the dates are checked per line.
    _candidates: dict[tuple[str, str, str, str], tuple[tuple[int, Rule], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def markup(cls, percent: str) -> PriceBook:
        """A book of one default markup (tests, the demo)."""
        return price_book_from({"defaults": {"markup_percent": percent}})

    def rule_for(self, line: PricingInput) -> tuple[int | None, _Price]:
        """(rule index or None for the defaults, the price) most specific for the line: the
        highest level, then a rule naming charge types, then the earliest in the book.
        Raises NotBillable when nothing matches and there are no defaults."""
        key = _rule_key(line)
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._rank(key)
            if len(self._candidates) >= RULE_CACHE_SIZE:
                self._candidates.clear()
            self._candidates[key] = candidates
        for index, rule in candidates:
            if rule.covers(line.charge_start):
                return index, rule
        if self.defaults is None:
            raise NotBillable("no price-book rule matches and there are no [defaults]")
        return None, self.defaults

    def _rank(self, key: tuple[str, str, str, str]) -> tuple[tuple[int, Rule], ...]:
        matching = [(i, rule) for i, rule in enumerate(self.rules) if rule.matches_key(key)]
        matching.sort(key=lambda item: (-item[1].level, item[1].charge_types is None, item[0]))
        return tuple(matching)

    def fx_rate(self, cost_currency: str, currency: str) -> Decimal | None:
        """Units of `currency` per unit of `cost_currency`; None when the same currency.
        Raises NotBillable when the book has no rate for the pair."""
        if cost_currency == currency:
            return None
        rate = self.fx.get((cost_currency, currency))
        if rate is None:
            raise NotBillable(
                f'no [fx] rate "{cost_currency}->{currency}" in the price book for a customer '
                f"billed in {currency}"
            )
        return rate

    def price(self, line: PricingInput) -> PricedLine:
        """The customer price of one line (module docstring: formulas, rounding)."""
        rate = self.fx_rate(line.cost_currency, line.currency)
        index, price = self.rule_for(line)
        cost_here = line.cost * rate if rate is not None else line.cost
        quantity = abs(line.quantity)
        if price.markup_percent is not None:
            exact = cost_here * (1 + price.markup_percent / HUNDRED)
            amount = _round(exact, line.currency)
            unit = (
                (abs(amount) / quantity).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)
                if quantity
                else Decimal(0)
            )
        else:
            assert price.unit_price is not None
            unit = price.unit_price
            fraction = (
                Decimal(1)
                if line.charge_type in NOT_PRORATED
                else prorated_fraction(line.charge_start, line.charge_end, annual=line.annual)
            )
            amount = _round(unit * quantity * fraction, line.currency)
            if line.cost < 0:
                amount = -amount  # Microsoft's credit reaches the customer at the same rule
        amount = amount.copy_abs() if amount.is_zero() else amount
        below = False
        if price.min_margin_percent is not None and amount > 0:
            below = (amount - cost_here) / amount * HUNDRED < price.min_margin_percent
        return PricedLine(amount, unit, rate, cost_here, below, index)


def annual_billing(billing_frequency: str, term_and_cycle: str) -> bool:
    """Whether Microsoft bills the line yearly, from its BillingFrequency ("Annual",
    "Monthly", …) or TermAndBillingCycle ("1 Year Subscription - Annual billing")."""
    frequency = billing_frequency.strip().lower()
    if frequency:
        return frequency in ("annual", "yearly", "annually", "year")
    text = term_and_cycle.lower()
    return "annual billing" in text or "yearly billing" in text
