"""The SPEC §8 endpoints that read the ledger."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BeforeValidator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ledger.api.auth import require
from ledger.api.data import Reader
from ledger.api.errors import problem_responses
from ledger.api.models import (
    CUSTOMER_ID_PATTERN,
    Balance,
    Customer,
    Delinquency,
    Event,
    Invoice,
    MarginRow,
    PageOf,
    Remittance,
    SupportTicket,
    TaxRow,
    TrialBalanceRow,
)
from ledger.api.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    STREAM_POSITION,
    decode_cursor,
    encode_cursor,
    paginate,
)
from ledger.domain.ids import normalize_id
from projections.accounts import balance_row
from projections.invoices import invoice_row

# A GUID in either case is one customer (SPEC §2): the path's id is read in lower case.
CustomerId = Annotated[
    str,
    Path(pattern=CUSTOMER_ID_PATTERN, description="Partner Center customer (tenant) id."),
    AfterValidator(normalize_id),
]


def _iso_day(value: object) -> object:
    # Only YYYY-MM-DD: pydantic alone would also take "0" as 1970-01-01 (a Unix time).
    if (
        value is None
        or isinstance(value, date)
        or (isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value))
    ):
        return value
    raise ValueError("must be a date YYYY-MM-DD")


AsOf = Annotated[
    date | None,
    BeforeValidator(_iso_day),
    Query(description="Date (YYYY-MM-DD); default today (UTC). A past date replays history "
                      "up to the end of that day."),
]  # fmt: skip


def _iso_instant(value: object) -> object:
    # SPEC §13: an instant with a time of day (a bare date would be a guess); no offset = UTC.
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
            instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else (
                instant.astimezone(UTC))  # fmt: skip
        except (ValueError, OverflowError):
            raise ValueError("must be a valid instant (1900..9000)") from None
        if not 1900 <= instant.year <= 9000:
            raise ValueError("must be a valid instant (1900..9000)")
        return instant
    raise ValueError("must be an instant YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|±HH:MM]")


_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?", re.ASCII,
)  # fmt: skip
AsRecordedAt = Annotated[
    datetime | None,
    BeforeValidator(_iso_instant),
    Query(description="Instant (ISO 8601, UTC without an offset): only events recorded at or "
                      "before it count: what the ledger showed then (as of that day unless "
                      "`as_of`)."),
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Period = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="One billing period YYYY-MM."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=1024, description="`next_cursor` of the previous page (opaque)."),
]


# Unknown query parameters are refused app-wide (ledger/api/strict.py).
reader_role = [Depends(require("reader"))]
customer_errors = problem_responses(401, 403, 404, 422, 503)
list_errors = problem_responses(400, 401, 403, 422, 503)
router = APIRouter()


# Dependencies that do no I/O are `async def`: a plain `def` is run on the thread pool, a
# thread hop per dependency per request (a quarter of a balance lookup's CPU, profiled).
async def get_reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]


# ---- one customer ---------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}", response_model=Customer, dependencies=reader_role,
    responses=customer_errors, tags=["customers"],
)  # fmt: skip
def get_customer(customer_id: CustomerId, reader: ReaderDep) -> dict[str, Any]:
    """The customer's profile: name, currency, terms, collections policy, status."""
    row = reader.account(customer_id)
    return {
        "customer_id": row["customer_id"],
        "name": row["name"],
        "currency": row["currency"],
        "email": row.get("email"),
        "payment_terms_days": row["payment_terms_days"],
        "collections_policy": row["policy"],
        "status": "suspended" if row["suspended"] else "active",
        "suspended_subscriptions": sorted(row["suspended"]),
        "registered_at": row.get("registered_at"),
        # SPEC §12 (rows stored before tax have none: rate 0, not exempt)
        "tax_rate": str(row.get("tax_rate") or "0"),
        "tax_exempt": bool(row.get("tax_exempt")),
        "tax_id": row.get("tax_id"),
        "country": row.get("country"),
        "address": row.get("address"),
    }


@router.get(
    "/customers/{customer_id}/balance", response_model=Balance, dependencies=reader_role,
    responses=customer_errors, tags=["customers"],
)  # fmt: skip
async def get_balance(
    customer_id: CustomerId,
    reader: ReaderDep,
    as_of: AsOf = None,
    as_recorded_at: AsRecordedAt = None,
) -> Response:
    """The SPEC §6 `balances` row of the customer on `as_of` (as recorded at an instant)."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    current = not historical and as_recorded_at is None
    row = await reader.stored_account(customer_id) if current else None
    if row is None:  # history, embedded, or not projected yet: on a thread, it may replay
        row = await run_in_threadpool(
            reader.account, customer_id, day if historical else None, as_recorded_at
        )
    # The hot read (issue #22): the row goes out as balance_row made it, without FastAPI
    # validating it against `Balance` and encoding it again (~a fifth of a lookup's CPU);
    # tests/unit/test_api.py checks that balance_row's rows are `Balance`'s JSON.
    return Response(orjson.dumps(balance_row(row, day)), media_type="application/json")


@router.get(
    "/customers/{customer_id}/invoices", response_model=PageOf[Invoice],
    dependencies=reader_role, responses={**customer_errors, **problem_responses(400)},
    tags=["customers"],
)  # fmt: skip
def list_invoices(
    customer_id: CustomerId,
    reader: ReaderDep,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """The customer's invoices (and debit memos), oldest first, as they stood on `as_of`
    (SPEC §12 `invoices` rows, with `status`)."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    row = reader.account(customer_id, day if historical else None, as_recorded_at)
    items = [invoice_row(invoice_id, invoice, row["currency"], day)
             for invoice_id, invoice in row["invoices"].items()]  # fmt: skip
    page = paginate(
        items, lambda i: (i["invoice_date"] or "", i["invoice_id"]), (str, str),
        f"invoices:{customer_id}", limit, cursor,
    )  # fmt: skip
    return page.body()


@router.get(
    "/customers/{customer_id}/events", response_model=PageOf[Event],
    dependencies=[Depends(require("auditor"))],
    responses={**customer_errors, **problem_responses(400)}, tags=["customers"],
)  # fmt: skip
def list_events(
    customer_id: CustomerId, reader: ReaderDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """The customer's audit history: every stored event in stream order (SPEC §5 shape, with
    each event's hash-chain link). Needs the `auditor` or `admin` role."""
    scope = f"events:{customer_id}"
    after = decode_cursor(scope, cursor, (STREAM_POSITION,))[0] if cursor is not None else 0
    found = reader.events(customer_id, after, limit + 1)
    items = found[:limit]
    more = len(found) > limit
    next_cursor = encode_cursor(scope, (items[-1]["stream_position"],)) if more else None
    return {"items": items, "next_cursor": next_cursor}


# ---- views ----------------------------------------------------------------------------------


@router.get(
    "/delinquency", response_model=PageOf[Delinquency], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_delinquency(
    reader: ReaderDep,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """Customers with an overdue balance on `as_of` or suspended (until reinstated), most
    days past due first (SPEC §6)."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    types, key = (int, str), (lambda r: (-r["days_past_due"], r["customer_id"]))
    if reader.stored and not historical and as_recorded_at is None:
        # Today's worklist from the summary tables, ordered and paged in SQL.
        fetch = lambda after, n: reader.delinquency_after(day, after, n)  # noqa: E731
        return _keyset_page("delinquency", types, key, fetch, limit, cursor)
    rows = reader.view("delinquency", day, historical, as_recorded_at)
    return paginate(rows, key, types, "delinquency", limit, cursor).body()


def _keyset_page(
    scope: str,
    types: tuple[type, ...],
    key: Callable[[dict[str, Any]], tuple[Any, ...]],
    fetch: Callable[[tuple[Any, ...] | None, int], list[dict[str, Any]]],
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page read in `key` order after the cursor's key by `fetch(after, n)` (SQL with a
    keyset, not every row sorted): the same pages and cursors as `paginate`."""
    after = decode_cursor(scope, cursor, types) if cursor is not None else None
    found = fetch(after, limit + 1)
    items = found[:limit]
    next_cursor = encode_cursor(scope, key(items[-1])) if len(found) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/remittance", response_model=PageOf[Remittance], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_remittance(
    reader: ReaderDep,
    as_of: AsOf = None,
    period: Period = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """What is owed to Microsoft per billing period and currency (SPEC §6)."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    rows = reader.view("remittance", day, historical, as_recorded_at, period=period)
    page = paginate(
        rows, lambda r: (r["billing_period"], r["currency"]), (str, str), "remittance",
        limit, cursor,
    )  # fmt: skip
    return page.body()


@router.get(
    "/support/tickets", response_model=PageOf[SupportTicket], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_tickets(
    reader: ReaderDep,
    as_of: AsOf = None,
    status: Annotated[Literal["open", "escalated", "resolved"] | None, Query()] = None,
    customer_id: Annotated[
        str | None,
        Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's."),
        AfterValidator(lambda value: None if value is None else normalize_id(value)),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """Support tickets, by customer and ticket id (SPEC §6)."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    rows = reader.view("support", day, historical, as_recorded_at, status=status,
                       customer_id=customer_id)  # fmt: skip
    page = paginate(
        rows, lambda r: (r["customer_id"], r["ticket_id"]), (str, str), "support", limit, cursor
    )
    return page.body()


@router.get(
    "/trial-balance", response_model=PageOf[TrialBalanceRow], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_trial_balance(
    reader: ReaderDep,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    as_recorded_at: AsRecordedAt = None,
) -> dict[str, Any]:
    """One row per ledger account and currency; debits equal credits in every currency."""
    day, historical = reader.resolve(as_of, as_recorded_at)
    types, key = (str, str), (lambda r: (r["account"], r["currency"]))
    if reader.stored and not historical and as_recorded_at is None:
        # Today's rows from the summary tables, paged in SQL (as the console's Audit page).
        fetch = reader.trial_balance_after
        return _keyset_page("trial-balance", types, key, fetch, limit, cursor)
    rows = reader.view("trial-balance", day, historical, as_recorded_at)
    return paginate(rows, key, types, "trial-balance", limit, cursor).body()


@router.get(
    "/margin", response_model=PageOf[MarginRow], dependencies=reader_role,
    responses=list_errors, tags=["views"],
)  # fmt: skip
def list_margin(
    reader: ReaderDep,
    period: Period = None,
    customer_id: Annotated[
        str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Only this customer's.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Revenue, cost (converted at each charge's rate) and margin per customer, billing period
    and currency (SPEC §10)."""
    day, historical = reader.resolve(None)
    rows = reader.view("margin", day, historical, period=period, customer_id=customer_id)
    page = paginate(
        rows, lambda r: (r["customer_id"], r["billing_period"], r["currency"]), (str, str, str),
        "margin", limit, cursor,
    )  # fmt: skip
    return page.body()


@router.get(
    "/tax", response_model=PageOf[TaxRow], dependencies=reader_role, responses=list_errors,
    tags=["views"],
)  # fmt: skip
def list_tax(
    reader: ReaderDep,
    period: Period = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Taxable amount, tax invoiced, tax given back by credit notes and tax due per billing
    period and currency (SPEC §12)."""
    day, historical = reader.resolve(None)
    rows = reader.view("tax", day, historical, period=period)
    page = paginate(
        rows, lambda r: (r["billing_period"], r["currency"]), (str, str), "tax", limit, cursor
    )
    return page.body()
