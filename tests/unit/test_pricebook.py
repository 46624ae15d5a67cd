"""The price book (SPEC §10): rule precedence, proration, FX, half-even rounding, credits,
validity windows, minimum margins and one clear error for a malformed book."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import pricebook
from ledger.domain.pricebook import (
    NotBillable,
    PriceBook,
    PriceBookError,
    PricingInput,
    annual_billing,
    load_price_book,
    price_book_from,
    prorated_fraction,
)

D = Decimal

LINE = PricingInput(
    customer_id="c1", currency="USD", product_id="P1", sku_id="0001", charge_type="cycle",
    cost=D("100.00"), cost_currency="USD", quantity=D(10),
    charge_start=date(2026, 1, 1), charge_end=date(2026, 1, 31),
)  # fmt: skip

PRECEDENCE = """
[defaults]
markup_percent = "1"

[[rules]]
charge_types = ["cycle"]
markup_percent = "2"

[[rules]]
product_id = "P1"
markup_percent = "3"

[[rules]]
sku_id = "0001"
markup_percent = "4"

[[rules]]
customer_id = "c1"
markup_percent = "5"

[[rules]]
customer_id = "c1"
product_id = "P1"
markup_percent = "6"

[[rules]]
customer_id = "c1"
product_id = "P1"
sku_id = "0001"
markup_percent = "7"
"""


def test_the_most_specific_rule_wins_at_every_level() -> None:
    book = load_price_book(PRECEDENCE)
    # Remove rules from the most specific down: each time the next level prices the line.
    expected = ["107.00", "106.00", "105.00", "104.00", "103.00", "102.00", "101.00"]
    for dropped in range(7):
        trimmed = replace(book, rules=book.rules[: len(book.rules) - dropped])
        assert str(trimmed.price(LINE).amount) == expected[dropped]


def test_rules_of_other_customers_products_skus_and_types_are_skipped() -> None:
    book = load_price_book(PRECEDENCE)
    other = replace(LINE, customer_id="c2", product_id="P2", sku_id="0002", charge_type="usage")
    priced = book.price(other)
    assert priced.amount == D("101.00") and priced.rule is None  # the defaults


def test_a_rule_naming_charge_types_beats_one_of_the_same_level_without() -> None:
    book = load_price_book("""
[[rules]]
customer_id = "c1"
markup_percent = "10"
[[rules]]
customer_id = "c1"
charge_types = ["cycle", "renew"]
markup_percent = "20"
""")
    assert book.price(LINE).amount == D("120.00")
    assert book.price(replace(LINE, charge_type="usage")).amount == D("110.00")


def test_validity_is_by_charge_start_inclusive_price_protection() -> None:
    book = load_price_book("""
[defaults]
markup_percent = "50"
[[rules]]
customer_id = "c1"
valid_from = "2026-01-01"
valid_to = "2026-12-31"
unit_price = "9.00"
""")
    assert book.price(LINE).amount == D("90.00")  # 10 x 9.00, a full month
    last_day = replace(LINE, charge_start=date(2026, 12, 31), charge_end=date(2027, 1, 30))
    assert book.price(last_day).amount == D("90.00")
    after = replace(LINE, charge_start=date(2027, 1, 1), charge_end=date(2027, 1, 31))
    assert book.price(after).amount == D("150.00")  # protection over: the default markup
    before = replace(LINE, charge_start=date(2025, 12, 1), charge_end=date(2025, 12, 31))
    assert book.price(before).amount == D("150.00")


def test_one_book_prices_each_line_by_its_own_charge_start_across_windows() -> None:
    # One book met by lines of the same customer, product, SKU and type but other starts, in
    # an order that goes in and out of each window: the choice remembered for the first line
    # never prices another line whose start falls elsewhere.
    book = load_price_book("""
[defaults]
markup_percent = "50"
[[rules]]
sku_id = "0001"
valid_from = "2026-01-01"
markup_percent = "10"
[[rules]]
customer_id = "c1"
sku_id = "0001"
valid_from = "2026-03-01"
valid_to = "2026-03-31"
unit_price = "9.00"
[[rules]]
customer_id = "c1"
valid_to = "2025-12-31"
markup_percent = "20"
""")

    def on(day: date) -> Decimal:
        return book.price(replace(LINE, charge_start=day, charge_end=day)).amount

    assert on(date(2026, 2, 1)) == D("110.00")  # only the SKU rule covers February
    assert on(date(2026, 3, 31)) == D("2.90")  # customer+SKU, protected: 10 x 9.00 x 1/31
    assert on(date(2025, 12, 31)) == D("120.00")  # customer rule; the SKU rule not yet valid
    assert on(date(2026, 4, 1)) == D("110.00")  # protection over: the SKU rule again
    assert on(date(2026, 3, 1)) == D("3.21")  # 10 x 9.00 x 1/28 (the cycle Feb 2 - Mar 1)
    assert on(date(2025, 12, 31)) == D("120.00")
    other = replace(LINE, customer_id="c2", charge_start=date(2025, 6, 1),
                    charge_end=date(2025, 6, 1))  # fmt: skip
    assert book.price(other).amount == D("150.00")  # nothing covers it: the defaults


def test_proration_worked_example_of_the_docstring() -> None:
    # 36.00 per seat per month, 10 seats, 2026-01-20..2026-02-09 of the cycle
    # 2026-01-10..2026-02-09 (31 days), 21 days covered: 36 x 10 x 21/31 = 243.870967… → 243.87
    assert prorated_fraction(date(2026, 1, 20), date(2026, 2, 9)) == D(21) / D(31)
    book = load_price_book('[defaults]\nunit_price = "36.00"\n')
    line = replace(LINE, quantity=D(10), charge_start=date(2026, 1, 20),
                   charge_end=date(2026, 2, 9))  # fmt: skip
    assert book.price(line).amount == D("243.87")


def test_proration_cycles_full_months_years_and_month_ends() -> None:
    assert prorated_fraction(date(2026, 1, 10), date(2026, 2, 9)) == 1
    assert prorated_fraction(date(2026, 2, 1), date(2026, 2, 28)) == 1  # 28-day February
    assert prorated_fraction(date(2026, 2, 15), date(2026, 2, 28)) == D(14) / D(28)
    assert prorated_fraction(date(2026, 3, 1), date(2027, 2, 28), annual=True) == 1
    assert prorated_fraction(date(2026, 9, 1), date(2027, 2, 28), annual=True) == D(181) / D(365)


def test_usage_and_one_time_are_not_prorated() -> None:
    book = load_price_book('[defaults]\nunit_price = "2.50"\n')
    usage = replace(LINE, charge_type="usage", quantity=D(3), charge_start=date(2026, 1, 5),
                    charge_end=date(2026, 1, 6))  # fmt: skip
    assert book.price(usage).amount == D("7.50")


def test_rounding_is_half_even_to_the_minor_unit_once() -> None:
    book = PriceBook.markup("50")
    assert book.price(replace(LINE, cost=D("0.05"))).amount == D("0.08")  # 0.075 → 0.08
    assert book.price(replace(LINE, cost=D("0.01"))).amount == D("0.02")  # 0.015 → 0.02
    assert book.price(replace(LINE, cost=D("0.03"))).amount == D("0.04")  # 0.045 → 0.04
    yen = load_price_book('[defaults]\nmarkup_percent = "0"\n[fx]\n"USD->JPY" = "150.5"\n')
    assert yen.price(replace(LINE, currency="JPY", cost=D("1.00"))).amount == D("150")  # .5→0
    assert yen.price(replace(LINE, currency="JPY", cost=D("1.01"))).amount == D("152")


def test_fx_converts_cost_and_the_markup_applies_in_the_customer_currency() -> None:
    book = load_price_book('[defaults]\nmarkup_percent = "10"\n[fx]\n"USD->EUR" = "0.92"\n')
    priced = book.price(replace(LINE, currency="EUR", cost=D("100.00")))
    assert priced.amount == D("101.20")  # 100 x 0.92 x 1.10
    assert priced.cost_fx_rate == D("0.92")
    assert priced.cost_in_currency == D("92.0000")
    assert book.price(LINE).cost_fx_rate is None  # same currency: no conversion


def test_a_missing_fx_rate_is_not_billable_never_guessed() -> None:
    book = load_price_book('[defaults]\nmarkup_percent = "10"\n[fx]\n"USD->EUR" = "0.92"\n')
    with pytest.raises(NotBillable, match='no \\[fx\\] rate "USD->GBP"'):
        book.price(replace(LINE, currency="GBP"))


def test_credits_are_negative_at_the_same_rule() -> None:
    markup = PriceBook.markup("15")
    credit = replace(LINE, charge_type="remove_quantity", cost=D("-12.34"))
    assert markup.price(credit).amount == D("-14.19")  # -14.191
    fixed = load_price_book('[defaults]\nunit_price = "36.00"\n')
    line = replace(credit, quantity=D(2), charge_start=date(2026, 1, 20),
                   charge_end=date(2026, 2, 9))  # fmt: skip
    priced = fixed.price(line)
    assert priced.amount == D("-48.77")  # -(36 x 2 x 21/31 = 48.774…)
    assert priced.unit_price == D("36.00")


def test_min_margin_flags_lines_priced_below_it() -> None:
    book = load_price_book("""
[defaults]
markup_percent = "3"
min_margin_percent = "5"
[[rules]]
customer_id = "c9"
markup_percent = "10"
min_margin_percent = "5"
""")
    assert book.price(LINE).below_min_margin  # 3/103 = 2.9 % < 5 %
    assert not book.price(replace(LINE, customer_id="c9")).below_min_margin  # 9.1 %


def test_unit_price_of_a_markup_line_is_amount_per_unit() -> None:
    priced = PriceBook.markup("15").price(replace(LINE, quantity=D(3)))
    assert priced.unit_price == D("38.333333")
    assert PriceBook.markup("15").price(replace(LINE, quantity=D(0))).unit_price == 0


def test_no_rule_and_no_defaults_is_not_billable() -> None:
    book = load_price_book('[[rules]]\ncustomer_id = "other"\nmarkup_percent = "1"\n')
    with pytest.raises(NotBillable, match="no price-book rule"):
        book.price(LINE)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[rules]]\ncustomer_id = "c"\nmarkup_percent = "x"\n',
            r"rules\[0\]\.markup_percent: 'x' is not a decimal number",
        ),
        (
            '[[rules]]\nmarkup_percent = "1"\n[[rules]]\ncustomer_id = "c"\n',
            r"rules\[1\]: give exactly one of markup_percent or unit_price",
        ),
        ('[[rules]]\nmarkup_percent = "1"\nunit_price = "2"\n', r"rules\[0\]: give exactly one"),
        ('[[rules]]\nmarkup_percent = "1"\nskuid = "2"\n', r"rules\[0\]\.skuid: unknown key"),
        (
            '[[rules]]\nmarkup_percent = "1"\ncharge_types = ["cycles"]\n',
            r"rules\[0\]: charge_types: 'cycles' is not one of",
        ),
        (
            '[[rules]]\nmarkup_percent = "1"\nvalid_from = "2026-13-01"\n',
            r"rules\[0\]\.valid_from: must be a date",
        ),
        (
            '[[rules]]\nmarkup_percent = "1"\nvalid_from = 2026-02-01\nvalid_to = 2026-01-01\n',
            r"rules\[0\]: valid_to 2026-01-01 is before valid_from 2026-02-01",
        ),
        (
            "[defaults]\nmarkup_percent = 1.5\n",
            r"defaults\.markup_percent: must be a decimal string",
        ),
        ('[defaults]\nunit_price = "1.1234567"\n', r"defaults: unit_price has more than 6"),
        ('[defaults]\nunit_price = "-1"\n', r"defaults: unit_price must be >= 0"),
        ('[fx]\n"USD-EUR" = "0.9"\n', r'fx\.USD-EUR: must be written "USD->EUR"'),
        ('[fx]\n"USD->EUR" = "0"\n', r"fx\.USD->EUR: the rate must be > 0"),
        ('[fx]\n"USD->EUR" = "abc"\n', r"fx\.USD->EUR: 'abc' is not a decimal"),
        ("[defaults\n", r"not valid TOML"),
        ('[defualts]\nmarkup_percent = "1"\n', r"defualts: unknown key"),
    ],
)
def test_a_malformed_price_book_is_one_error_naming_rule_and_key(text: str, message: str) -> None:
    with pytest.raises(PriceBookError, match=message) as caught:
        load_price_book(text, "prices.toml")
    assert str(caught.value).startswith("prices.toml: ")
    assert caught.value.code == "invalid_price_book"


def test_annual_billing_from_the_file_columns() -> None:
    assert annual_billing("Annual", "")
    assert not annual_billing("Monthly", "1 Year Subscription - Annual billing")
    assert annual_billing("", "One-Year commitment - Annual billing")
    assert not annual_billing("", "")


def _spec_choice(book: PriceBook, line: PricingInput) -> int | None:
    """SPEC §10 read literally, over every rule: of those matching the line (its charge start
    in the window), the most specific (customer+SKU, customer+product, customer, SKU,
    product, the rest); then one naming charge types; then the first in the book."""

    def level(rule: Any) -> int:
        if rule.customer_id and rule.sku_id:
            return 6
        if rule.customer_id and rule.product_id:
            return 5
        return 4 if rule.customer_id else 3 if rule.sku_id else 2 if rule.product_id else 1

    best: tuple[int, bool, int] | None = None
    for index, rule in enumerate(book.rules):
        if (
            rule.customer_id in (None, line.customer_id)
            and rule.product_id in (None, line.product_id)
            and rule.sku_id in (None, line.sku_id)
            and (rule.charge_types is None or line.charge_type in rule.charge_types)
            and (rule.valid_from is None or rule.valid_from <= line.charge_start)
            and (rule.valid_to is None or line.charge_start <= rule.valid_to)
        ):
            rank = (level(rule), rule.charge_types is not None, -index)
            best = rank if best is None or rank > best else best
    return None if best is None else -best[2]


_DAYS = [date(2026, 1, 1) + timedelta(days=30 * n) for n in range(6)]


@st.composite
def _books_and_lines(draw: st.DrawFn) -> tuple[PriceBook, list[PricingInput]]:
    rules = []
    for n in range(draw(st.integers(1, 9))):
        rule: dict[str, Any] = {"markup_percent": str(n + 2)}
        for key, values in (("customer_id", ["c1", "c2"]), ("product_id", ["P1", "P2"]),
                            ("sku_id", ["0001", "0002"])):  # fmt: skip
            value = draw(st.sampled_from([None, *values]))
            if value is not None:
                rule[key] = value
        if draw(st.booleans()):
            rule["charge_types"] = draw(
                st.lists(st.sampled_from(["cycle", "usage", "new"]), min_size=1, unique=True)
            )
        start, end = sorted(draw(st.lists(st.sampled_from(_DAYS), min_size=2, max_size=2)))
        if draw(st.booleans()):
            rule["valid_from"] = start.isoformat()
        if draw(st.booleans()):
            rule["valid_to"] = end.isoformat()
        rules.append(rule)
    raw: dict[str, Any] = {"rules": rules}
    if draw(st.booleans()):
        raw["defaults"] = {"markup_percent": "1"}
    shift = st.integers(-1, 1).map(lambda days: timedelta(days=days))
    lines = [
        replace(LINE, customer_id=draw(st.sampled_from(["c1", "c2", "c3"])),
                product_id=draw(st.sampled_from(["P1", "P2"])),
                sku_id=draw(st.sampled_from(["0001", "0002"])),
                charge_type=draw(st.sampled_from(["cycle", "usage", "new"])),
                charge_start=draw(st.sampled_from(_DAYS)) + draw(shift))
        for _ in range(draw(st.integers(1, 40)))
    ]  # fmt: skip
    return price_book_from(raw), lines


@settings(max_examples=300, deadline=None)
@given(_books_and_lines(), st.integers(1, 4))
def test_the_remembered_rule_candidates_choose_as_spec_section_10_over_any_line_order(
    book_and_lines: tuple[PriceBook, list[PricingInput]], cache_size: int
) -> None:
    # Lines of the same customer, product, SKU and type go in and out of overlapping windows
    # (a day before, on, after each bound); the candidates remembered per key (forgotten
    # when the cache is full: a tiny one here) never change which rule prices a line.
    book, lines = book_and_lines
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pricebook, "RULE_CACHE_SIZE", cache_size)
        for line in lines:
            chosen = _spec_choice(book, line)
            if chosen is None and book.defaults is None:
                with pytest.raises(NotBillable):
                    book.rule_for(line)
                continue
            index, price = book.rule_for(line)
            assert index == chosen
            assert price is (book.defaults if chosen is None else book.rules[chosen])
