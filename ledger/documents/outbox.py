"""Delivery of documents by email (SPEC §14) through an outbox table in the ledger's database.

`fill(app, db)` reads the event log from the outbox's position and adds one row per document
(an issued invoice or debit memo, each DunningNoticeSent / SubscriptionSuspended /
SubscriptionReinstated) in the same transaction as the new position: nothing is missed or
added twice, whatever crashes. `deliver(...)` sends the due rows over SMTP (standard library
`email` + `smtplib`), one message per row, its Message-ID derived from the document id.

Exactly once: a row is marked `sent` (committed) *before* the message's final "." is
written; until the server's reply is read it stays `confirmed = 0`. A crash before the "."
leaves the server with a broken transaction it discards, and the row is sent again (same
Message-ID); a crash after it leaves a delivered message marked sent. The only window in
which a crash could lose a message is between that commit and the one socket write of the
"." (microseconds); rows sent but never confirmed are listed by `ledger notify status`.
Temporary failures (4xx, connection errors) are retried with exponential backoff; permanent
ones (5xx) are kept as `failed` with the server's reason. Customers without an email are
kept as `no_email` and retried once they have one (never skipped silently).

Table `document_outbox` (document_id PK, customer_id, kind invoice|notice, reference,
position, status pending|sent|failed|no_email, attempts, next_attempt_at, last_error,
message_id, created_at, sent_at, confirmed) and `document_outbox_position` (one row).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import NAMESPACE_URL, uuid5

import structlog

from ledger.app.application import LedgerApplication
from ledger.config import ConfigError, Settings
from ledger.documents.model import (
    NOTICE_EVENTS,
    DocumentNotFound,
    Invoice,
    Notice,
    human_date,
    invoice_document,
    money,
    notice_document,
)
from ledger.documents.profile import PartnerProfile
from ledger.documents.render import render_html, render_pdf
from ledger.domain.personal import ERASED
from ledger.store.db import Database
from ledger.store.wire import Decoder

log = structlog.get_logger(__name__)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS document_outbox (
        document_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        reference TEXT NOT NULL,
        position BIGINT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        message_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        confirmed INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS document_outbox_due ON document_outbox (status, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS document_outbox_position (
        id INTEGER PRIMARY KEY, position BIGINT NOT NULL
    )""",
)
INVOICE_EVENTS = ("InvoiceIssued", "DebitMemoIssued")
MAX_BACKOFF = timedelta(hours=6)


class MailError(Exception):
    """A delivery failure: `temporary` (retry later) or permanent (kept as failed)."""

    def __init__(self, reason: str, temporary: bool) -> None:
        super().__init__(reason)
        self.temporary = temporary


def now_utc() -> datetime:
    return datetime.now(UTC)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def message_id_for(document_id: str, mail_from: str) -> str:
    """`<uuid5(document id)@sender domain>`: the same document always has the same id."""
    domain = mail_from.rsplit("@", 1)[-1].strip("> ") or "csp-ledger.invalid"
    return f"<{uuid5(NAMESPACE_URL, 'csp-ledger:document:' + document_id)}@{domain}>"


NOTIFY_LOCK_ID = 0x1ED65D  # held by the one `ledger notify` of a PostgreSQL database


class SenderBusy(Exception):
    """Another `ledger notify` is sending from this database (two could send a row twice)."""


def claim_sender(db: Database, settings: Settings) -> Any:
    """Be the only sender of this database until the process ends (PostgreSQL: a session
    advisory lock on `db`'s connection; SQLite: an flock on `<database>.notify.lock`, whose
    returned handle must be kept open). Raises SenderBusy."""
    if db.is_postgres:
        got = db.execute("SELECT pg_try_advisory_lock(%s)", (NOTIFY_LOCK_ID,)).fetchone()[0]
        db.commit()
        if not got:
            raise SenderBusy("another `ledger notify` is running on this database")
        return None
    import fcntl

    path = settings.database_url[len("sqlite:///") :]
    if not path or path == ":memory:":
        return None
    handle = open(f"{path}.notify.lock", "a")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SenderBusy("another `ledger notify` is running on this database") from None
    return handle


def open_outbox(settings: Settings) -> Database:
    db = Database(settings.database_url)
    db.create_schema(*SCHEMA)
    return db


# ---- filling -----------------------------------------------------------------------------


def fill(app: LedgerApplication, db: Database, mail_from: str) -> int:
    """Add a row for every document of the events after the outbox's position; returns how
    many were added. One transaction with the position (re-running adds nothing)."""
    row = db.execute("SELECT position FROM document_outbox_position WHERE id = 1").fetchone()
    start = (row[0] if row else 0) + 1
    decoder = Decoder(app.mapper)
    added, last, created = 0, start - 1, _stamp(now_utc())
    rows: list[tuple[Any, ...]] = []
    for notification in app.notifications(start=start, page=5000):
        last = notification.id
        event = decoder.published(notification)
        if event is None:
            continue
        etype = event["event_type"]
        if etype in INVOICE_EVENTS:
            kind, ref = "invoice", event["data"]["invoice_id"]
        elif etype in NOTICE_EVENTS:
            kind, ref = "notice", event["event_id"]
        else:
            continue
        doc_id = f"{kind}:{event['customer_id']}:{ref}"
        rows.append((doc_id, event["customer_id"], kind, ref, event["global_position"],
                     created, message_id_for(doc_id, mail_from), created))  # fmt: skip
    if rows:
        db.executemany(
            "INSERT INTO document_outbox (document_id, customer_id, kind, reference, position,"
            " status, next_attempt_at, message_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s, %s)"
            " ON CONFLICT (document_id) DO NOTHING",
            rows,
        )
        added = len(rows)
    if last >= start:
        db.execute(
            "INSERT INTO document_outbox_position (id, position) VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET position = excluded.position",
            (last,),
        )
    db.commit()
    return added


def skip_existing(app: LedgerApplication, db: Database) -> int:
    """Start mailing from now on a ledger that already issued documents: moves the outbox's
    position to the newest stored event without adding rows, so documents issued so far are
    never mailed. Returns how many events were passed over (0 when already at the head; the
    position never moves backwards). Rows already in the outbox are left as they are."""
    row = db.execute("SELECT position FROM document_outbox_position WHERE id = 1").fetchone()
    at = row[0] if row else 0
    head = app.head_position()
    if head <= at:
        return 0
    db.execute(
        "INSERT INTO document_outbox_position (id, position) VALUES (1, %s)"
        " ON CONFLICT (id) DO UPDATE SET position = excluded.position",
        (head,),
    )
    db.commit()
    return head - at


# ---- SMTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    ssl: bool  # smtps://: TLS from the first byte
    starttls: str  # "auto" (when offered), "require" or "no"
    username: str | None
    password: str | None


def parse_smtp_url(url: str | None) -> SmtpTarget:
    """`smtp://[user:pass@]host[:port][?starttls=auto|require|no]` (port 25; STARTTLS when
    the server offers it) or `smtps://…` (port 465). Raises ConfigError naming
    LEDGER_SMTP_URL. Credentials are refused over a connection that may stay plain, except
    to a loopback host."""
    if not url:
        raise ConfigError("LEDGER_SMTP_URL: not set (smtp://host:port or smtps://host:port)")
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("LEDGER_SMTP_URL: must be smtp://host[:port] or smtps://host[:port]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ConfigError(f"LEDGER_SMTP_URL: unknown parameter {unknown[0]!r} (only starttls)")
    starttls = query.get("starttls", "auto")
    if starttls not in ("auto", "require", "no"):
        raise ConfigError(f"LEDGER_SMTP_URL: starttls={starttls!r} is not auto, require or no")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise ConfigError("LEDGER_SMTP_URL: the port is not a number 1-65535") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if user and parts.scheme == "smtp" and starttls != "require" and not loopback:
        raise ConfigError(
            "LEDGER_SMTP_URL: credentials would be sent in clear; use smtps:// or ?starttls=require"
        )
    return SmtpTarget(parts.hostname, port, parts.scheme == "smtps", starttls, user, password)


def check_mail_from(value: str | None) -> str:
    if not value or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", value):
        raise ConfigError(f"LEDGER_MAIL_FROM: {value!r} is not an email address")
    return value


class Mailer:
    """One SMTP connection, opened on first use and again after a failure."""

    def __init__(self, target: SmtpTarget, timeout: float = 30) -> None:
        self.target = target
        self.timeout = timeout
        self.smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if t.ssl:
            smtp = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
        # The body and the final "." are two writes (the row is committed between them):
        # without TCP_NODELAY, Nagle and the server's delayed ACK hold the "." for ~40 ms.
        if smtp.sock is not None:
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo()
        if not t.ssl and t.starttls != "no":
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            elif t.starttls == "require":
                smtp.close()
                raise MailError(f"{t.host}:{t.port} does not offer STARTTLS", temporary=True)
        if t.username:
            smtp.login(t.username, t.password or "")
        return smtp

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (OSError, smtplib.SMTPException):
                self.smtp.close()
            self.smtp = None

    def send(self, message: EmailMessage, before_end: Callable[[], None]) -> None:
        """Send `message`; `before_end()` runs just before the final "." (it commits the row
        as sent). Raises MailError (temporary for 4xx and connection failures)."""
        try:
            if self.smtp is None:
                self.smtp = self._connect()
            self._transaction(self.smtp, message, before_end)
        except smtplib.SMTPResponseException as error:
            self._reset()
            reason = f"{error.smtp_code} {_text(error.smtp_error)}"
            raise MailError(reason, temporary=400 <= error.smtp_code < 500) from None
        except smtplib.SMTPRecipientsRefused as error:
            self._reset()
            code, text = next(iter(error.recipients.values()))
            raise MailError(f"{code} {_text(text)}", temporary=400 <= code < 500) from None
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise MailError(f"connection: {error}", temporary=True) from None

    def _reset(self) -> None:
        try:
            if self.smtp is not None:
                self.smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    @staticmethod
    def _transaction(
        smtp: smtplib.SMTP, message: EmailMessage, before_end: Callable[[], None]
    ) -> None:
        sender, recipient = str(message["From"]), str(message["To"])
        code, resp = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, resp, sender)
        code, resp = smtp.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, resp)})
        code, resp = smtp.docmd("DATA")
        if code != 354:
            raise smtplib.SMTPDataError(code, resp)
        body = message.as_bytes(policy=SMTP_POLICY)
        body = re.sub(rb"(?m)^\.", b"..", body)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        smtp.send(body)
        before_end()
        smtp.send(b".\r\n")
        code, resp = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, resp)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# ---- the message of a document -----------------------------------------------------------


def compose(
    doc: Invoice | Notice, profile: PartnerProfile, mail_from: str, message_id: str,
    templates_dir: Any = None,
) -> EmailMessage:  # fmt: skip
    """The email of a document: plain text, the HTML document, and (invoices) the PDF."""
    message = EmailMessage()
    message["From"] = f"{profile.name} <{mail_from}>"
    message["To"] = doc.customer.email or ""
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(now_utc())
    if isinstance(doc, Invoice):
        message["Subject"] = f"{doc.title} {doc.invoice_id} from {profile.name}"
        text = (
            f"Dear {doc.customer.name},\n\nplease find attached {doc.title.lower()} "
            f"{doc.invoice_id} of {human_date(doc.invoice_date)}: total "
            f"{money(doc.total, doc.currency)}, amount due {money(doc.amount_due, doc.currency)}"
            f" by {human_date(doc.due_date)}.\n\n{profile.name}\n{profile.support_contact}\n"
        )
    else:
        message["Subject"] = f"{doc.title}: {doc.customer.name}"
        text = (
            f"Dear {doc.customer.name},\n\n{doc.title}. Overdue: "
            f"{money(doc.total_overdue, doc.currency)}.\n\n{profile.name}\n"
            f"{profile.support_contact}\n"
        )
    message.set_content(text)
    message.add_alternative(render_html(doc, profile, templates_dir), subtype="html")
    if isinstance(doc, Invoice):
        message.add_attachment(render_pdf(doc, profile), maintype="application",
                               subtype="pdf", filename=f"{doc.invoice_id}.pdf")  # fmt: skip
    return message


# ---- delivering --------------------------------------------------------------------------


@dataclass
class Delivered:
    sent: int = 0
    retry: int = 0
    failed: int = 0
    no_email: int = 0


def _due(db: Database, at: datetime, limit: int) -> list[tuple[Any, ...]]:
    return list(
        db.execute(
            "SELECT document_id, customer_id, kind, reference, attempts, message_id"
            " FROM document_outbox WHERE status IN ('pending', 'no_email')"
            " AND next_attempt_at <= %s ORDER BY position, document_id LIMIT %s",
            (_stamp(at), limit),
        ).fetchall()
    )


def deliver(
    app: LedgerApplication, db: Database, mailer: Mailer, profile: PartnerProfile,
    mail_from: str, *, backoff: float = 60.0, batch: int = 200, templates_dir: Any = None,
    clock: Callable[[], datetime] = now_utc,
) -> Delivered:  # fmt: skip
    """Send every row due now; returns the counts. Rows are taken `batch` at a time."""
    from ledger.documents.service import customer_events

    done = Delivered()
    while True:
        rows = _due(db, clock(), batch)
        db.commit()
        if not rows:
            return done
        events_of: dict[str, list[dict[str, Any]]] = {}
        for document_id, customer_id, kind, ref, attempts, message_id in rows:
            if customer_id not in events_of:
                events_of = {customer_id: customer_events(app, customer_id)}
            events = events_of[customer_id]
            try:
                doc: Invoice | Notice = (
                    invoice_document(events, ref) if kind == "invoice"
                    else notice_document(events, ref, app.policies)
                )  # fmt: skip
            except DocumentNotFound as error:
                _finish(db, document_id, "failed", attempts + 1, str(error), clock())
                done.failed += 1
                continue
            if not doc.customer.email or doc.customer.email == ERASED:  # SPEC §13
                _park(db, document_id, clock() + timedelta(seconds=backoff))
                done.no_email += 1
                continue
            message = compose(doc, profile, mail_from, message_id, templates_dir)

            def mark_sent(document_id: str = document_id, attempts: int = attempts) -> None:
                _finish(db, document_id, "sent", attempts + 1, None, clock())

            try:
                mailer.send(message, mark_sent)
            except MailError as error:
                db.rollback()
                if error.temporary:
                    wait = min(timedelta(seconds=backoff * 2**attempts), MAX_BACKOFF)
                    db.execute(
                        "UPDATE document_outbox SET status = 'pending', attempts = %s,"
                        " last_error = %s, next_attempt_at = %s, sent_at = NULL"
                        " WHERE document_id = %s",
                        (attempts + 1, str(error), _stamp(clock() + wait), document_id),
                    )
                    done.retry += 1
                else:
                    _finish(db, document_id, "failed", attempts + 1, str(error), clock())
                    done.failed += 1
                db.commit()
                log.warning("notify.failed", document_id=document_id, reason=str(error),
                            temporary=error.temporary)  # fmt: skip
                continue
            db.execute(
                "UPDATE document_outbox SET confirmed = 1 WHERE document_id = %s",
                (document_id,),
            )
            db.commit()
            done.sent += 1
            log.info("notify.sent", document_id=document_id, message_id=message_id)
        if len(rows) < batch:
            return done  # the rows put off (retries, no email) are not due before their time


def _finish(
    db: Database, document_id: str, status: str, attempts: int, error: str | None, at: datetime
) -> None:
    db.execute(
        "UPDATE document_outbox SET status = %s, attempts = %s, last_error = %s, sent_at = %s"
        " WHERE document_id = %s",
        (status, attempts, error, _stamp(at) if status == "sent" else None, document_id),
    )
    db.commit()


def _park(db: Database, document_id: str, until: datetime) -> None:
    db.execute(
        "UPDATE document_outbox SET status = 'no_email', next_attempt_at = %s,"
        " last_error = 'customer has no email' WHERE document_id = %s",
        (_stamp(until), document_id),
    )
    db.commit()


def outbox_status(db: Database) -> dict[str, Any]:
    """Counts by status and the rows that need a person: pending (with their last error),
    failed (with the reason), sent but never confirmed, customers without an email."""
    counts = dict(db.execute("SELECT status, COUNT(*) FROM document_outbox GROUP BY status"))
    cols = "document_id, customer_id, attempts, next_attempt_at, last_error"

    def rows(where: str) -> list[dict[str, Any]]:
        found = db.execute(f"SELECT {cols} FROM document_outbox WHERE {where}"
                           " ORDER BY position, document_id").fetchall()  # fmt: skip
        keys = [c.strip() for c in cols.split(",")]
        return [dict(zip(keys, r, strict=True)) for r in found]

    no_email = sorted({r["customer_id"] for r in rows("status = 'no_email'")})
    result = {
        "counts": {k: counts.get(k, 0) for k in ("pending", "sent", "failed", "no_email")},
        "pending": rows("status = 'pending'"),
        "failed": rows("status = 'failed'"),
        "unconfirmed": rows("status = 'sent' AND confirmed = 0"),
        "customers_without_email": no_email,
    }
    db.commit()
    return result


def iter_forever(interval: float) -> Iterator[None]:
    while True:
        yield
        time.sleep(interval)
