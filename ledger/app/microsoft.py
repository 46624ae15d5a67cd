"""Paying Microsoft, as carefully as being paid (SPEC §11): the commands on the partner's
account with Microsoft, over the event store.

- `set_credit_limit`: `ledger microsoft credit-limit set`.
- `pay`: `ledger remittance pay` without `--period`: the named invoice, else the oldest due;
  the rest unallocated.
- `settle_after_invoice`: after reconciliation recorded a Microsoft invoice: book the
  period's cost at the invoiced amount (MicrosoftCostAdjusted) and apply unallocated money.
- `check`: `ledger microsoft check` (also in `ledger collections run` and the schedule):
  the true-ups and allocations above for every period, then the alerts
  (MicrosoftCreditThresholdCrossed, MicrosoftInvoiceOverdue) for every day up to `as_of`,
  each once. The alerts are decided on the timeline of business time (the state at the end
  of each day), so daily runs and one late run record the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from ledger.app.collections import CollectionsIncomplete
from ledger.domain import events as ev
from ledger.domain.account import end_of, start_of
from ledger.domain.errors import CurrencyMismatch
from ledger.domain.microsoft import (
    OVERDUE_DAYS,
    MicrosoftAccount,
    apply_to_row,
    book_currency,
    fold_book,
    invoice_items,
    microsoft_account_id,
    overdue_alerts,
    threshold_alerts,
)
from ledger.domain.money import fmt
from ledger.domain.stream import Meta
from ledger.published import to_published

if TYPE_CHECKING:
    from ledger.app.application import LedgerApplication

log = structlog.get_logger(__name__)

BOOK_TOPICS = [
    get_topic(cls)
    for cls in (
        ev.ChargePosted, ev.MicrosoftInvoiceRecorded, ev.MicrosoftPaymentRecorded,
        ev.MicrosoftCreditLimitSet, ev.MicrosoftPaymentMade, ev.MicrosoftPaymentAllocated,
    )
]  # fmt: skip


def book_events(app: LedgerApplication) -> list[dict[str, Any]]:
    """The events the Microsoft book folds, in global order, in the SPEC §5 shape."""
    out = []
    for notification in app.notifications(topics=BOOK_TOPICS):
        event = app.mapper.to_domain_event(notification)
        assert isinstance(event, ev.LedgerEvent)
        out.append(to_published(event, notification.id))
    return out


def find_account(app: LedgerApplication, currency: str) -> MicrosoftAccount | None:
    try:
        account = app.repository.get(microsoft_account_id(currency))
    except AggregateNotFoundError:
        return None
    assert isinstance(account, MicrosoftAccount)
    return account


def _account(app: LedgerApplication, currency: str, meta: Meta) -> MicrosoftAccount:
    return find_account(app, currency) or MicrosoftAccount.open(currency, meta)


def set_credit_limit(
    app: LedgerApplication, amount: Decimal, currency: str, effective: date
) -> bool:
    """Record Microsoft's credit limit for `currency` from `effective` on (False: the same
    limit from the same day was recorded before)."""
    meta = Meta(occurred_at=start_of(effective), recorded_at=app.clock())
    account = _account(app, currency, meta)
    if not account.set_credit_limit(amount, effective, meta):
        return False
    app.save(account)
    log.info("microsoft.credit_limit_set", currency=currency, amount=str(amount))
    return True


def pay(
    app: LedgerApplication,
    amount: Decimal,
    currency: str,
    reference: str,
    paid_on: date,
    *,
    invoice_number: str | None = None,
    force: bool = False,
) -> tuple[MicrosoftAccount, bool]:
    """Record a payment to Microsoft (idempotent by reference). Raises CurrencyMismatch
    (Microsoft bills nothing in that currency) and the errors of MicrosoftAccount.make_payment;
    nothing is recorded then."""
    rows = fold_book(book_events(app))
    row = rows.get(currency)
    meta = Meta(occurred_at=start_of(paid_on), recorded_at=app.clock())
    account = find_account(app, currency)
    if row is None and account is None:
        owed = ", ".join(sorted(rows)) or "no currency"
        raise CurrencyMismatch(
            f"currency: Microsoft bills the partner nothing in {currency} (it does in {owed})",
            field="currency",
        )
    items = invoice_items(row)[0] if row is not None else []
    account = account or MicrosoftAccount.open(currency, meta)
    applied = account.make_payment(
        amount, currency, reference, paid_on, items, meta, invoice_number=invoice_number,
        force=force,
    )  # fmt: skip
    if applied:
        app.save(account)
        log.info("microsoft.payment_made", currency=currency, reference=reference,
                 amount=str(amount))  # fmt: skip
    return account, applied


def pay_period(
    app: LedgerApplication,
    period: str,
    amount: Decimal,
    reference: str,
    paid_on: date,
    currency: str | None = None,
    *,
    force: bool = False,
) -> tuple[Any, bool]:
    """`ledger remittance pay --period`: a payment for one billing period (also before its
    invoice), recorded on the period's stream as before. Once the period is invoiced, what
    is open on its invoices counts payments applied to them from any payment, so the same
    money is not paid twice (Overpayment unless `force`)."""
    from ledger.domain.remittance import Overpayment

    currencies = {currency} if currency else set(app.remittance_currencies(period))
    if len(currencies) == 1 and app.find_remittance(period, next(iter(currencies))) is not None:
        cur = next(iter(currencies))
        row = fold_book(book_events(app)).get(cur)
        items = [i for i in invoice_items(row)[0] if i.billing_period == period] if row else []
        open_total = sum((i.open for i in items), Decimal(0))
        known = app.find_remittance(period, cur)
        repeated = known is not None and reference in known.payments
        if items and amount > open_total and not force and not repeated:
            due = fmt(max(open_total, Decimal(0)), cur)
            raise Overpayment(
                f"amount: {fmt(amount, cur)} {cur} exceeds the {due} {cur} due to Microsoft "
                f"for {period} (invoiced); use --force to record it anyway",
                field="amount",
            )
    return app.pay_microsoft(period, amount, reference, paid_on, currency, force=force)


def settle_after_invoice(
    app: LedgerApplication, period: str, currency: str, invoice_date: date
) -> int:
    """After Microsoft's invoice for (period, currency) is recorded: true up the period's
    cost and apply unallocated money. Returns the number of events recorded."""
    meta = Meta(occurred_at=start_of(invoice_date), recorded_at=app.clock())
    return _settle(app, fold_book(book_events(app)), meta, only=(period, currency))


def _settle(
    app: LedgerApplication,
    rows: dict[str, dict[str, Any]],
    meta: Meta,
    only: tuple[str, str] | None = None,
) -> int:
    touched: list[Any] = []
    for currency, row in sorted(rows.items()):
        periods = sorted({i["billing_period"] for i in row["invoices"].values()})
        for period in periods:
            if only is not None and (period, currency) != only:
                continue
            remittance = app.find_remittance(period, currency)
            accrued = Decimal(row["accrued"].get(period, "0"))
            if remittance is not None and remittance.true_up(accrued, meta):
                touched.append(remittance)
        if only is not None and only[1] != currency:
            continue
        account = find_account(app, currency)
        if account is not None and account.unallocated:
            items = invoice_items(row)[0]
            if account.apply_unallocated(items, meta):
                touched.append(account)
    if touched:
        count = sum(len(t.pending_events) for t in touched)
        app.save(*touched)
        return count
    return 0


@dataclass(frozen=True)
class CheckResult:
    settled: int  # true-ups and allocations recorded
    alerts: list[dict[str, Any]]  # the alert events recorded: {"event_type", **data}


def timeline_alerts(events: list[dict[str, Any]], as_of: date) -> list[tuple[str, dict[str, Any]]]:
    """Every alert Microsoft's rules call for on each day up to `as_of`, in day order:
    (event type, data). The state of a day is that of the events that occurred by its end;
    only days on which something happened or an invoice reaches 30/45/60 days past due can
    change anything, so only those are evaluated."""
    timed = sorted(
        ((datetime.fromisoformat(e["occurred_at"]), e) for e in events), key=lambda pair: pair[0]
    )  # stable: global order within an instant
    ordered = [event for _, event in timed]
    days = {when.astimezone(UTC).date() for when, _ in timed}
    for row in fold_book(ordered).values():
        for inv in row["invoices"].values():
            due = date.fromisoformat(inv["due_date"])
            days.update(due + timedelta(days=n) for n in OVERDUE_DAYS)
    rows: dict[str, dict[str, Any]] = {}
    percent: dict[str, Decimal | None] = {}
    out: list[tuple[str, dict[str, Any]]] = []
    index = 0
    for day in sorted(d for d in days if d <= as_of):
        cutoff = end_of(day)
        while index < len(timed) and timed[index][0] <= cutoff:
            event = timed[index][1]
            currency = book_currency(event)
            if currency is not None:
                rows[currency] = apply_to_row(rows.get(currency), event)
            index += 1
        for currency, row in sorted(rows.items()):
            crossed, percent[currency] = threshold_alerts(row, day, percent.get(currency))
            out += [("MicrosoftCreditThresholdCrossed", a) for a in crossed]
            out += [("MicrosoftInvoiceOverdue", a) for a in overdue_alerts(row, day)]
    return out


def check(app: LedgerApplication, as_of: date) -> CheckResult:
    """`ledger microsoft check --as-of DATE`: idempotent, deterministic for a date."""
    meta = Meta(occurred_at=end_of(as_of), recorded_at=app.clock())
    settled = _settle(app, fold_book(book_events(app)), meta)
    alerts = timeline_alerts(book_events(app), as_of)
    accounts: dict[str, MicrosoftAccount] = {}
    recorded: list[dict[str, Any]] = []
    for kind, data in alerts:
        currency = data["currency"]
        account = accounts.get(currency) or _account(app, currency, meta)
        accounts[currency] = account
        if account.record_alerts(kind, [data], meta):
            recorded.append({"event_type": kind, **data})
    touched = [a for a in accounts.values() if a.pending_events]
    if touched:
        app.save(*touched)
    for item in recorded:
        log.warning("microsoft.alert", **{k: v for k, v in item.items() if v is not None})
    return CheckResult(settled, recorded)


def collections_and_microsoft(app: LedgerApplication, as_of: date, *, dry_run: bool = False
                              ) -> list[dict[str, Any]]:  # fmt: skip
    """`ledger collections run` (and its schedule): every customer's policy, then the
    Microsoft check for the same date (not on a dry run). The fired items of both, the
    Microsoft alerts as `{"customer_id": "microsoft:<CUR>", "event_type", "invoice_id", ...}`."""
    incomplete: CollectionsIncomplete | None = None
    try:
        fired = app.run_collections(as_of, dry_run=dry_run)
    except CollectionsIncomplete as error:  # a customer's policy is gone: Microsoft still checked
        incomplete, fired = error, error.fired
    if not dry_run:
        for alert in check(app, as_of).alerts:
            target = alert.get("invoice_number") or f"{alert.get('threshold')}% of credit limit"
            fired.append({"customer_id": f"microsoft:{alert['currency']}", "invoice_id": target,
                          **alert})  # fmt: skip
    if incomplete is not None:
        raise CollectionsIncomplete(incomplete.skipped, fired)
    return fired
