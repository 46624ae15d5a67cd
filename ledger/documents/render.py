"""Documents to HTML (Jinja2 templates, autoescaped; the package's templates, each
overridable by a file of the same name in `LEDGER_TEMPLATES_DIR`) and to PDF (fpdf2, drawn
directly: pure Python, no system packages, well over 100 invoices/s on one core).

`render_html(doc, profile, templates_dir) -> str`; `render_pdf(doc, profile) -> bytes`
(A4, core Helvetica: text is extractable). Errors: `ConfigError` when
`LEDGER_TEMPLATES_DIR` is not a directory; jinja2's TemplateError for a broken override.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

from ledger.config import ConfigError
from ledger.documents.model import Invoice, Notice, Statement, human_date, money
from ledger.documents.profile import PartnerProfile

Document = Invoice | Statement | Notice
AGING_LABELS = {
    "current": "Not yet due", "d1_30": "1-30 days", "d31_60": "31-60 days",
    "d61_90": "61-90 days", "d90_plus": "Over 90 days",
}  # fmt: skip
NOTICE_MESSAGE = {
    "reminder": "The invoices below are past due. Please pay them at your earliest convenience.",
    "final_notice": "Final notice: unless the invoices below are paid, your services will be "
    "suspended.",
    "suspend": "Because the invoices below remain unpaid, your services are being suspended.",
    "suspended": "Your subscription is suspended because the invoices below remain unpaid.\n"
    "Paying them reinstates it.",
    "reinstated": "Thank you: your subscription has been reinstated.",
}
NEXT_STEP = {
    "reminder": "a payment reminder", "final_notice": "a final notice before suspension",
    "suspend": "suspension of your services",
}  # fmt: skip


def next_step(doc: Notice) -> str:
    """The next step in words, with its date."""
    if doc.next_action is None:
        return "none: your account is in good standing." if not doc.overdue else (
            "please contact us to arrange payment."
        )  # fmt: skip
    if doc.next_action.startswith("reinstate_when_"):
        return "your services are reinstated once the overdue amount is paid in full."
    what = NEXT_STEP.get(doc.next_action, doc.next_action.replace("_", " "))
    when = f" on {human_date(doc.next_action_date)}" if doc.next_action_date else ""
    return f"{what}{when}, unless the overdue amount is paid before."


@lru_cache(maxsize=8)
def environment(templates_dir: Path | None) -> Environment:
    """The Jinja2 environment: the override directory first, then the package's templates."""
    loaders: list[Any] = []
    if templates_dir is not None:
        if not templates_dir.is_dir():
            raise ConfigError(f"LEDGER_TEMPLATES_DIR: {str(templates_dir)!r} is not a directory")
        loaders.append(FileSystemLoader(str(templates_dir)))
    loaders.append(PackageLoader("ledger.documents", "templates"))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(default=True))
    env.filters["money"] = lambda amount, currency: money(Decimal(amount), currency)
    env.filters["day"] = human_date
    return env


def template_name(doc: Document) -> str:
    if isinstance(doc, Invoice):
        return "invoice.html"
    if isinstance(doc, Statement):
        return "statement.html"
    return doc.template


def render_html(doc: Document, profile: PartnerProfile, templates_dir: Path | None = None) -> str:
    template = environment(templates_dir).get_template(template_name(doc))
    extra: dict[str, Any] = {"aging_labels": AGING_LABELS}
    if isinstance(doc, Notice):
        extra["next_step"] = next_step(doc)
    return template.render(doc=doc, partner=profile, **extra)


# ---- PDF ---------------------------------------------------------------------------------


def _latin(text: str) -> str:
    """Core PDF fonts are Latin-1: other characters are replaced, never an error."""
    return (
        text.replace("\u2013", "-").replace("·", "-").encode("latin-1", "replace").decode("latin-1")
    )


class _Page(FPDF):
    def __init__(self, profile: PartnerProfile) -> None:
        super().__init__(format="A4")
        self.profile = profile
        self.set_auto_page_break(auto=True, margin=25)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        p = self.profile
        self.set_y(-22)
        self.set_font("Helvetica", size=7)
        self.text_line(size=7, h=3.5, text=(
            f"{p.name} - {p.address} - Tax ID {p.tax_id}\n"
            f"Support: {p.support_contact}, {p.support_hours} - page {self.page_no()}"
        ))  # fmt: skip

    def text_line(self, text: str, size: float = 10, bold: bool = False, h: float = 5) -> None:
        # One cell per line: multi_cell's line breaking was 3/4 of a page's time, and the
        # texts here are short lines (one longer than the page would run past the margin).
        self.set_font("Helvetica", "B" if bold else "", size)
        for line in text.split("\n"):
            self.put(0, h, line, newline=True)

    def put(
        self, w: float, h: float, text: str, align: str = "L", *, newline: bool = False,
        border: bool = False,
    ) -> None:  # fmt: skip
        """Like `cell` (width 0: to the right margin), drawn with `text`, five times
        cheaper: single-line cells are all these documents have."""
        if self.y + h > self.page_break_trigger and not self.in_footer:
            self.add_page()
        value = _latin(text)
        x, width = self.x, w or (self.w - self.r_margin - self.x)
        if align == "R":
            left = x + width - self.c_margin - self.get_string_width(value)
        else:
            left = x + self.c_margin
        self.text(left, self.y + 0.5 * h + 0.3 * self.font_size, value)
        if border:
            self.line(x, self.y + h, x + width, self.y + h)
        if newline:
            self.set_xy(self.l_margin, self.y + h)
        else:
            self.set_x(x + width)

    def grid(self, head: list[str], rows: list[list[str]], widths: list[float]) -> None:
        self.set_font("Helvetica", "B", 8.5)
        for i, (title, width) in enumerate(zip(head, widths, strict=True)):
            align = "L" if i == 0 or width > 45 else "R"
            self.put(width, 6, title, align, border=True)
        self.ln(6)
        self.set_font("Helvetica", "", 8.5)
        for row in rows:
            for i, (value, width) in enumerate(zip(row, widths, strict=True)):
                align = "L" if i == 0 or width > 45 else "R"
                self.put(width, 5.5, value[:70], align)
            self.ln(5.5)
        self.ln(2)


def _header(pdf: _Page, title: str, stamp: str | None = None) -> None:
    p = pdf.profile
    pdf.add_page()
    pdf.text_line(p.name, 13, bold=True, h=6)
    pdf.text_line(f"{p.address}\nTax ID {p.tax_id} - {p.email} - {p.phone}", 8.5, h=4)
    pdf.ln(4)
    pdf.text_line(title, 16, bold=True, h=8)
    if stamp:
        pdf.set_text_color(180, 0, 0)
        pdf.text_line(stamp, 14, bold=True, h=7)
        pdf.set_text_color(0, 0, 0)


def _totals(pdf: _Page, rows: list[tuple[str, str, bool]]) -> None:
    for label, value, bold in rows:
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.put(130, 6, label)
        pdf.put(50, 6, value, "R", newline=True)


def _how_to_pay(pdf: _Page, reference: str) -> None:
    b = pdf.profile.bank
    pdf.ln(3)
    pdf.text_line("How to pay", 10, bold=True)
    pdf.text_line(
        f"Bank transfer to {b.account_name}, {b.bank_name}\nIBAN {b.iban} - BIC {b.bic}\n"
        f"Please quote {reference} as the payment reference.", 9, h=4.5,
    )  # fmt: skip


def _invoice_pdf(pdf: _Page, doc: Invoice) -> None:
    stamp = "VOID" if doc.void else (
        "CREDIT INVOICE - nothing to pay" if doc.kind == "credit_invoice" else None
    )  # fmt: skip
    _header(pdf, f"{doc.title} {doc.invoice_id}", stamp)
    c = doc.customer
    pdf.text_line(f"Bill to: {c.name} ({c.customer_id})", 10, bold=True)
    period = f" - Period {doc.period}" if doc.period else ""
    pdf.text_line(
        f"Invoice date {human_date(doc.invoice_date)} - Due date {human_date(doc.due_date)}"
        f"{period}", 10,
    )  # fmt: skip
    pdf.ln(3)
    rows = [
        [line.description,
         f"{human_date(line.period_start)} - {human_date(line.period_end)}"
         if line.period_start else "",
         f"{line.quantity}", money(line.unit_price, doc.currency), money(line.amount, doc.currency)]
        for line in doc.lines
    ]  # fmt: skip
    pdf.grid(["Description", "Period", "Quantity", "Unit price", "Amount"], rows,
              [62, 46, 20, 26, 26])  # fmt: skip
    cur = doc.currency
    _totals(pdf, [
        ("Subtotal", money(doc.subtotal, cur), False), ("Tax", money(doc.tax, cur), False),
        ("Total", money(doc.total, cur), True), ("Paid", money(doc.paid, cur), False),
        (f"Amount due by {human_date(doc.due_date)}", money(doc.amount_due, cur), True),
    ])  # fmt: skip
    _how_to_pay(pdf, doc.invoice_id)


def _statement_pdf(pdf: _Page, doc: Statement) -> None:
    _header(pdf, "Statement of account")
    c, cur = doc.customer, doc.currency
    pdf.text_line(f"{c.name} ({c.customer_id}) - {human_date(doc.start)} to {human_date(doc.end)}")
    pdf.text_line(f"Opening balance: {money(doc.opening_balance, cur)}", bold=True)
    pdf.ln(2)
    rows = [
        [human_date(line.date), line.type, line.reference[:28],
         money(line.debit, cur) if line.debit else "",
         money(line.credit, cur) if line.credit else "", money(line.balance, cur)]
        for line in doc.lines
    ]  # fmt: skip
    pdf.grid(["Date", "Type", "Reference", "Debit", "Credit", "Balance"], rows,
              [22, 22, 56, 26, 26, 28])  # fmt: skip
    pdf.text_line(f"Closing balance on {human_date(doc.end)}: {money(doc.closing_balance, cur)}",
                  11, bold=True)  # fmt: skip
    pdf.ln(2)
    pdf.grid([AGING_LABELS[k] for k in doc.aging], [[money(v, cur) for v in doc.aging.values()]],
              [36] * len(doc.aging))  # fmt: skip
    _how_to_pay(pdf, c.customer_id)


def _notice_pdf(pdf: _Page, doc: Notice) -> None:
    _header(pdf, doc.title)
    c, cur = doc.customer, doc.currency
    pdf.text_line(f"{human_date(doc.day)} - {c.name} ({c.customer_id})")
    if doc.subscription_id:
        pdf.text_line(f"Subscription {doc.subscription_id}")
    pdf.ln(2)
    pdf.text_line(NOTICE_MESSAGE.get(doc.action, ""), 10)
    pdf.ln(1)
    if doc.overdue:
        rows = [[o.invoice_id, human_date(o.due_date), str(o.days_past_due), money(o.amount, cur)]
                for o in doc.overdue]  # fmt: skip
        pdf.grid(["Invoice", "Due date", "Days overdue", "Amount"], rows, [80, 30, 30, 40])
        pdf.text_line(f"Total overdue: {money(doc.total_overdue, cur)}", 11, bold=True)
    else:
        pdf.text_line("Nothing is overdue on your account.")
    pdf.ln(2)
    pdf.text_line(f"Next step: {next_step(doc)}", 10, bold=True)
    _how_to_pay(pdf, c.customer_id)


def render_pdf(doc: Document, profile: PartnerProfile) -> bytes:
    """The document as a PDF (bytes)."""
    pdf = _Page(profile)
    pdf.set_title(_latin(getattr(doc, "title", "Statement of account")))
    # The document's own date: the same document renders to the same bytes.
    day = doc.invoice_date if isinstance(doc, Invoice) else (
        doc.end.isoformat() if isinstance(doc, Statement) else doc.day
    )  # fmt: skip
    pdf.set_creation_date(datetime.combine(date.fromisoformat(day), time(), UTC))
    if isinstance(doc, Invoice):
        _invoice_pdf(pdf, doc)
    elif isinstance(doc, Statement):
        _statement_pdf(pdf, doc)
    else:
        _notice_pdf(pdf, doc)
    return bytes(pdf.output())
