"""Tax, write-offs, void and reissue end to end through the CLI (SPEC §12), on SQLite and on
the real PostgreSQL, with exact figures: where billing systems' balances go wrong (write-offs
counted as paid, balances wrong after a write-off, credits reducing the wrong invoice, refunds
doubled on void). After every step the balances, invoices, tax and trial-balance views, and
the journal export summed per account, are compared with `oracle`, which computes the
expected figures from the steps alone, by hand-rolled bookkeeping that shares no code with
the ledger."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli import main as cli_main
from ledger.config import get_settings
from tests import helpers as h

pytestmark = pytest.mark.e2e

D = Decimal
CENT = D("0.01")
PERIOD = "2026-01"
COST = D("10.00")  # what Microsoft charges the partner for each of the test's charges


# ---- the oracle -------------------------------------------------------------------------


@dataclass
class _Invoice:
    id: str
    customer: str
    due: str
    subtotal: Decimal
    tax: Decimal
    charges: list[str]
    settled: dict[str, Decimal] = field(default_factory=dict)  # source -> amount
    written_off: Decimal = Decimal(0)
    tax_credited: Decimal = Decimal(0)
    void: bool = False

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax

    @property
    def open(self) -> Decimal:
        if self.void:
            return D(0)
        return self.total - sum(self.settled.values(), D(0)) - self.written_off


@dataclass
class _Customer:
    currency: str = "USD"
    rate: Decimal = Decimal(0)
    terms: int = 30
    unbilled: dict[str, Decimal] = field(default_factory=dict)
    charges: dict[str, Decimal] = field(default_factory=dict)
    invoices: dict[str, _Invoice] = field(default_factory=dict)
    sources: dict[str, Decimal] = field(default_factory=dict)  # "pay:P1"/"cn:C1" -> unapplied
    amounts: dict[str, Decimal] = field(default_factory=dict)  # source -> its amount
    reversed: set[str] = field(default_factory=set)
    write_offs: dict[str, dict[str, Decimal]] = field(default_factory=dict)


def oracle(steps: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The expected views after `steps`: ("register", cid, rate, terms, currency),
    ("charge", cid, id, amount), ("invoice", cid, invoice_id, due_date), ("pay", cid, id, amount,
    invoice|None), ("credit", cid, id, amount, invoice), ("write_off", cid, id, amount,
    invoice|None), ("unwrite", cid, id), ("void", cid, invoice), ("chargeback", cid, id).
    Money settles named invoice first, then the oldest due; sources oldest first."""
    customers: dict[str, _Customer] = {}

    def settle(c: _Customer, preferred: str | None = None) -> None:
        for source in list(c.sources):
            targets = sorted(
                (i for i in c.invoices.values() if i.open > 0), key=lambda i: (i.due, i.id)
            )
            targets.sort(key=lambda i: i.id != preferred)
            for invoice in targets:
                take = min(c.sources[source], invoice.open)
                if take <= 0:
                    break
                invoice.settled[source] = invoice.settled.get(source, D(0)) + take
                c.sources[source] -= take

    for step in steps:
        kind, cid = step[0], step[1]
        if kind == "register":
            customers[cid] = _Customer(currency=step[4], rate=D(step[2]), terms=step[3])
            continue
        c = customers[cid]
        if kind == "charge":
            c.unbilled[step[2]] = c.charges[step[2]] = D(step[3])
        elif kind == "invoice":
            subtotal = sum(c.unbilled.values(), D(0))
            tax = (subtotal * c.rate / 100).quantize(CENT, ROUND_HALF_EVEN)
            c.invoices[step[2]] = _Invoice(step[2], cid, step[3], subtotal, tax, list(c.unbilled))
            c.unbilled = {}
            settle(c)
        elif kind in ("pay", "credit"):
            source = f"{kind}:{step[2]}"
            c.sources[source] = c.amounts[source] = D(step[3])
            named = c.invoices.get(step[4] or "")
            if kind == "credit" and named is not None and named.tax:
                part = (min(D(step[3]), named.total) * named.tax / named.total).quantize(
                    CENT, ROUND_HALF_EVEN
                )
                named.tax_credited += part
            settle(c, step[4])
        elif kind == "write_off":
            left = D(step[3])
            named = (
                [c.invoices[step[4]]]
                if step[4]
                else sorted(
                    (i for i in c.invoices.values() if i.open > 0), key=lambda i: (i.due, i.id)
                )
            )
            parts = c.write_offs[step[2]] = {}
            for invoice in named:
                part = min(left, invoice.open)
                if part > 0:
                    invoice.written_off += part
                    parts[invoice.id] = part
                    left -= part
        elif kind == "unwrite":
            for invoice_id, part in c.write_offs.pop(step[2]).items():
                c.invoices[invoice_id].written_off -= part
            settle(c)
        elif kind == "void":
            invoice = c.invoices[step[2]]
            for source, amount in invoice.settled.items():
                c.sources[source] += amount
            invoice.settled, invoice.void = {}, True
            for charge in invoice.charges:
                c.unbilled[charge] = c.charges[charge]
            settle(c)
        elif kind == "chargeback":
            source = f"pay:{step[2]}"
            for invoice in c.invoices.values():
                invoice.settled.pop(source, None)
            c.sources[source] = D(0)
            c.reversed.add(source)
            settle(c)
    return _views(customers)


def _views(customers: dict[str, _Customer]) -> dict[str, Any]:
    balances, invoices, journal = {}, {}, {}
    tax: dict[tuple[str, str], dict[str, Decimal]] = {}

    def post(account: str, amount: Decimal) -> None:
        journal[account] = journal.get(account, D(0)) + amount

    for cid, c in customers.items():
        live = [i for i in c.invoices.values() if not i.void]
        cash = sum((a for s, a in c.amounts.items() if s.startswith("pay:")
                    and s not in c.reversed), D(0))  # fmt: skip
        credited = sum((a for s, a in c.amounts.items() if s.startswith("credit:")), D(0))
        outstanding = sum((i.open for i in live), D(0))
        unapplied = sum(c.sources.values(), D(0))
        written_off = sum((i.written_off for i in live), D(0))
        balances[cid] = {
            "billed": sum((i.total for i in live), D(0)), "paid": cash, "credited": credited,
            "written_off": written_off, "outstanding": outstanding, "unapplied_credit": unapplied,
            "balance": outstanding - unapplied, "overdue": outstanding,
            "unbilled": sum(c.unbilled.values(), D(0)),
        }  # fmt: skip
        for i in c.invoices.values():
            paid = sum((a for s, a in i.settled.items() if s.startswith("pay:")), D(0))
            by_credit = sum((a for s, a in i.settled.items() if s.startswith("credit:")), D(0))
            status = (
                "void" if i.void
                else ("partially_paid" if paid + by_credit else "open") if i.open > 0
                else "written_off" if i.written_off else "paid"
            )  # fmt: skip
            invoices[i.id] = {
                "subtotal": i.subtotal, "tax": i.tax, "total": i.total, "paid": paid,
                "credited": by_credit, "written_off": i.written_off, "open": i.open,
                "status": status,
            }  # fmt: skip
            slot = tax.setdefault((PERIOD, c.currency), {k: D(0) for k in (
                "taxable", "tax_invoiced", "tax_credited")})  # fmt: skip
            slot["tax_credited"] += i.tax_credited
            if not i.void:
                slot["taxable"] += i.subtotal
                slot["tax_invoiced"] += i.tax
        # The journal, account by account (debit positive).
        charged = sum(c.charges.values(), D(0))
        tax_credited = sum((i.tax_credited for i in c.invoices.values()), D(0))
        post(f"accounts_receivable:{cid}", outstanding)
        post(f"unbilled_receivable:{cid}", sum(c.unbilled.values(), D(0)))
        post(f"unapplied_cash_and_credits:{cid}", -unapplied)
        post("cash", cash)
        post("revenue", -charged + credited - tax_credited)
        post("tax_payable", -sum((i.tax for i in live), D(0)) + tax_credited)
        post("bad_debt", written_off)
        post("cost_of_sales", COST * len(c.charges))
        post("payable_to_microsoft", -COST * len(c.charges))
    for slot in tax.values():
        slot["tax_due"] = slot["tax_invoiced"] - slot["tax_credited"]
    return {"balances": balances, "invoices": invoices, "tax": tax, "journal": journal}


# ---- driving the CLI --------------------------------------------------------------------


class Ledger:
    """The `ledger` command on one database. The commands run in this process (typer's
    runner: the same command code as the installed `ledger`, without a Python start per
    command, which a check of four views after every step would pay ~80 times); the exit
    codes and one-line errors of `ledger` itself are checked by the void refusals below."""

    def __init__(self, url: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.url, self.cwd, self.steps, self.n = url, cwd, [], 0
        monkeypatch.setenv("LEDGER_DATABASE_URL", url)
        monkeypatch.delenv("LEDGER_KAFKA_BOOTSTRAP", raising=False)
        get_settings.cache_clear()
        self.runner = CliRunner()

    def cli(self, *args: str, stdin: str | None = None, ok: bool = True) -> str:
        if not ok:  # as a user sees it: exit 1 and one line on stderr
            done = h.run_cli(self.url, *args, stdin=stdin, cwd=self.cwd)
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            return done.stderr
        result = self.runner.invoke(cli_main.app, list(args), input=stdin)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    def send(self, kind: str, cid: str, **fields: Any) -> str:
        self.n += 1
        line = h.build(kind, cid, f"m-{cid}-{self.n}", occurred_at=self._at(), **fields)
        return self.cli("ingest", "-", stdin=line + "\n")

    def _at(self) -> str:
        return f"2026-02-{min(self.n, 28):02d}T10:00:00Z"

    def do(self, step: tuple[Any, ...], kind: str | None, **fields: Any) -> None:
        out = self.send(kind, step[1], **fields) if kind else ""
        assert kind is None or "applied 1" in out, out
        self.steps.append(step)
        self.check()

    def show(self, view: str, *args: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.cli("show", view, "--json", *args))
        return rows

    def check(self) -> None:
        want = oracle(self.steps)
        balances = {r["customer_id"]: r for r in self.show("balances")}
        for cid, expected in want["balances"].items():
            got = {k: D(balances[cid][k]) for k in expected}
            assert got == expected, (cid, self.steps[-1])
            assert not (D(balances[cid]["outstanding"]) and D(balances[cid]["unapplied_credit"]))
        invoices = {r["invoice_id"]: r for r in self.show("invoices")}
        assert set(invoices) == set(want["invoices"])
        for invoice_id, expected in want["invoices"].items():
            row = invoices[invoice_id]
            got = {k: row[k] if k == "status" else D(row[k]) for k in expected}
            assert got == expected, (invoice_id, self.steps[-1])
        tax = {(r["billing_period"], r["currency"]): r for r in self.show("tax")}
        got_tax = {slot: {k: D(v) for k, v in r.items() if k.startswith("tax") or k == "taxable"}
                   for slot, r in tax.items()}  # fmt: skip
        assert got_tax == want["tax"], self.steps[-1]
        trial = self.show("trial-balance")
        got_journal: dict[str, Decimal] = {}
        for row in trial:
            got_journal[row["account"]] = got_journal.get(row["account"], D(0)) + D(row["balance"])
        assert sum(got_journal.values(), D(0)) == 0
        nonzero = {a: v for a, v in got_journal.items() if v}
        assert nonzero == {a: v for a, v in want["journal"].items() if v}, self.steps[-1]
        exported: dict[str, Decimal] = {}
        lines = self.cli("export", "journal", "--from", "2000-01-01", "--to", "2099-12-31",
                         "--format", "jsonl").splitlines()  # fmt: skip
        for row in map(json.loads, lines):
            debit, credit = D(row["debit"] or 0), D(row["credit"] or 0)
            exported[row["account"]] = exported.get(row["account"], D(0)) + debit - credit
        assert {a: v for a, v in exported.items() if v} == nonzero, self.steps[-1]


def charge(ledger: Ledger, cid: str, charge_id: str, amount: str, currency: str) -> None:
    cost = str(COST)
    ledger.do(("charge", cid, charge_id, amount), "charge", charge_id=charge_id,
              subscription_id=f"sub-{cid}", product_id="P", sku_id="S", description="Seats",
              charge_type="cycle", quantity="1", unit_price=amount, amount=amount,
              currency=currency, cost=cost, billing_period=PERIOD, charge_start="2026-01-01",
              charge_end="2026-01-31")  # fmt: skip


def invoice_run(ledger: Ledger, *issued: tuple[str, str, str]) -> None:
    ledger.cli("invoice", "run", "--period", PERIOD)
    for cid, invoice_id, due in issued:
        ledger.steps.append(("invoice", cid, invoice_id, due))
    ledger.check()


def register(ledger: Ledger, cid: str, currency: str, rate: str, **tax: str) -> None:
    ledger.do(("register", cid, rate, 30, currency), "customer_registered", name=cid.upper(),
              currency=currency, payment_terms_days=30, tax_rate=rate, **tax)  # fmt: skip


def run_scenarios(ledger: Ledger) -> None:
    # 1. A 20 % VAT customer: invoice, partial payment, credit note on it, write-off of the
    #    rest, reversal of the write-off, payment in full.
    register(ledger, "vat", "EUR", "20", country="IE", tax_id="IE1234567T")
    charge(ledger, "vat", "V1", "60.01", "EUR")
    charge(ledger, "vat", "V2", "40.02", "EUR")
    invoice_run(ledger, ("vat", "INV-vat-2026-01", "2026-03-03"))
    inv = oracle(ledger.steps)["invoices"]["INV-vat-2026-01"]
    assert (inv["subtotal"], inv["tax"], inv["total"]) == (D("100.03"), D("20.01"), D("120.04"))
    ledger.do(("pay", "vat", "VP1", "50.00", None), "payment", payment_id="VP1", amount="50.00",
              currency="EUR", method="card", reference="r")  # fmt: skip
    ledger.do(("credit", "vat", "VC1", "30.00", "INV-vat-2026-01"), "credit_note",
              credit_id="VC1", amount="30.00", currency="EUR", reason="discount",
              invoice_id="INV-vat-2026-01")  # fmt: skip
    assert oracle(ledger.steps)["tax"][PERIOD, "EUR"]["tax_credited"] == D("5.00")
    ledger.do(("write_off", "vat", "VW1", "40.04", "INV-vat-2026-01"), "write_off",
              write_off_id="VW1", amount="40.04", currency="EUR", reason="insolvent",
              invoice_id="INV-vat-2026-01")  # fmt: skip
    assert oracle(ledger.steps)["invoices"]["INV-vat-2026-01"]["status"] == "written_off"
    # More than is open: a dead letter naming `amount`, nothing changes.
    out = ledger.send("write_off", "vat", write_off_id="VW2", amount="0.01", currency="EUR",
                      reason="again")  # fmt: skip
    assert "dead-lettered 1" in out
    letters = json.loads(ledger.cli("deadletters", "list", "--json"))
    assert letters[-1]["code"] == "exceeds_open_amount" and "amount" in letters[-1]["message"]
    ledger.check()
    ledger.do(("unwrite", "vat", "VW1"), "write_off_reversed", write_off_id="VW1",
              reason="customer paid after all")  # fmt: skip
    ledger.do(("pay", "vat", "VP2", "40.04", None), "payment", payment_id="VP2",
              amount="40.04", currency="EUR", method="bank_transfer", reference="r2")  # fmt: skip
    assert oracle(ledger.steps)["invoices"]["INV-vat-2026-01"]["status"] == "paid"

    # 2. Void and reissue after a partial payment (8.875 % sales tax).
    register(ledger, "vd", "USD", "8.875", country="US")
    charge(ledger, "vd", "D1", "200.00", "USD")
    invoice_run(ledger, ("vd", "INV-vd-2026-01", "2026-03-03"))
    ledger.do(("pay", "vd", "DP1", "100.00", None), "payment", payment_id="DP1",
              amount="100.00", currency="USD", method="card", reference="r")  # fmt: skip
    ledger.cli("invoice", "void", "INV-vd-2026-01", "--reason", "wrong address")
    ledger.steps.append(("void", "vd", "INV-vd-2026-01"))
    ledger.check()
    assert "already void" in ledger.cli("invoice", "void", "INV-vd-2026-01", "--reason", "x",
                                         ok=False)  # fmt: skip
    assert "INV-nobody-2026-01" in ledger.cli("invoice", "void", "INV-nobody-2026-01",
                                              "--reason", "x", ok=False)  # fmt: skip
    invoice_run(ledger, ("vd", "INV-vd-2026-01-2", "2026-03-03"))
    # The payment settles the reissue; it is not refundable a second time.
    out = ledger.send("refund", "vd", refund_id="DR1", amount="100.00", currency="USD",
                      reason="double")  # fmt: skip
    assert "dead-lettered 1" in out
    ledger.check()
    ledger.do(("pay", "vd", "DP2", "117.75", None), "payment", payment_id="DP2",
              amount="117.75", currency="USD", method="card", reference="r2")  # fmt: skip
    assert oracle(ledger.steps)["balances"]["vd"]["paid"] == D("217.75")  # not 317.75

    # 3. A chargeback after a write-off: the payment's part reopens, the write-off stays
    #    written off (bad debt is not cash that a chargeback could take back).
    register(ledger, "cb", "USD", "0")
    charge(ledger, "cb", "B1", "100.00", "USD")
    invoice_run(ledger, ("cb", "INV-cb-2026-01", "2026-03-03"))
    ledger.do(("pay", "cb", "BP1", "60.00", None), "payment", payment_id="BP1",
              amount="60.00", currency="USD", method="card", reference="r")  # fmt: skip
    ledger.do(("write_off", "cb", "BW1", "40.00", None), "write_off", write_off_id="BW1",
              amount="40.00", currency="USD", reason="uncollectible")  # fmt: skip
    ledger.do(("chargeback", "cb", "BP1"), "payment_reversed", payment_id="BP1",
              reason="chargeback")  # fmt: skip
    row = oracle(ledger.steps)["invoices"]["INV-cb-2026-01"]
    assert (row["open"], row["written_off"], row["paid"]) == (D("60.00"), D("40.00"), D(0))

    # A closed period's invoice is never voided.
    ledger.cli("period", "close", PERIOD)
    assert "closed" in ledger.cli("invoice", "void", "INV-vd-2026-01-2", "--reason", "x",
                                  ok=False)  # fmt: skip


def test_corrections_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        run_scenarios(Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, monkeypatch))
    finally:
        get_settings.cache_clear()


def test_corrections_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_pg_url: Callable[[], str]
) -> None:
    try:
        run_scenarios(Ledger(fresh_pg_url(), tmp_path, monkeypatch))
    finally:
        get_settings.cache_clear()
