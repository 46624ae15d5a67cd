"""Documents and delivery (SPEC §14): invoice PDFs/s next to HTML renders/s in the same run,
and `ledger notify` messages/s to a local SMTP server (aiosmtpd on 127.0.0.1).

    python benchmarks/documents.py [--invoices 10000] [--mail 1000] [--quick]

One process, one core: the store is an embedded SQLite file in a temporary directory with one
invoice per customer. Times exclude building the store; "render" times exclude reading the
events (documents are built first, then rendered), "notify" includes everything a real run
does per message (reading the customer's events, HTML + PDF, SMTP, two commits).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402

from ledger.bootstrap import build_app  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.documents.model import invoice_document  # noqa: E402
from ledger.documents.outbox import Mailer, deliver, fill, open_outbox, parse_smtp_url  # noqa: E402
from ledger.documents.profile import SAMPLE  # noqa: E402
from ledger.documents.render import render_html, render_pdf  # noqa: E402
from ledger.documents.service import customer_events  # noqa: E402
from ledger.logs import configure_logging  # noqa: E402
from tests.helpers import charge, customer_registered, msgs  # noqa: E402


class Count:
    def __init__(self) -> None:
        self.n = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.n += 1
        return "250 OK"


def build_store(url: str, invoices: int) -> Any:
    app = build_app(Settings(database_url=url, kafka_bootstrap=None))
    raws: list[str] = []
    for i in range(invoices):
        cid = f"bench-{i:05d}"
        raws += [customer_registered(cid), charge(cid, "CH-1", "120.00"),
                 charge(cid, "CH-2", "35.50", description="Azure plan (usage)")]  # fmt: skip
    for start in range(0, len(raws), 1000):
        app.handle_batch(msgs(raws[start : start + 1000]))
    app.run_invoices("2025-01", date(2025, 2, 1))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--mail", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="200 invoices, 100 mails")
    args = parser.parse_args()
    configure_logging("console", "warning")  # one line per message would be the benchmark
    invoices, mails = (200, 100) if args.quick else (args.invoices, min(args.mail, args.invoices))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        began = time.perf_counter()
        app = build_store(url, invoices)
        built = time.perf_counter() - began
        docs = [
            invoice_document(customer_events(app, f"bench-{i:05d}"), f"INV-bench-{i:05d}-2025-01")
            for i in range(invoices)
        ]
        began = time.perf_counter()
        for doc in docs:
            render_html(doc, SAMPLE)
        html_s = time.perf_counter() - began
        began = time.perf_counter()
        size = 0
        for doc in docs:
            size += len(render_pdf(doc, SAMPLE))
        pdf_s = time.perf_counter() - began

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        inbox = Count()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            settings = Settings(database_url=url, kafka_bootstrap=None)
            db = open_outbox(settings)
            fill(app, db, "billing@partner.example")
            # Only the first `mails` rows are due: the others are put off.
            db.execute("UPDATE document_outbox SET next_attempt_at = '9999' WHERE position > "
                       "(SELECT position FROM document_outbox ORDER BY position LIMIT 1 "
                       "OFFSET %s)", (mails - 1,))  # fmt: skip
            db.commit()
            mailer = Mailer(parse_smtp_url(f"smtp://127.0.0.1:{port}"))
            began = time.perf_counter()
            done = deliver(app, db, mailer, SAMPLE, "billing@partner.example")
            mail_s = time.perf_counter() - began
            mailer.close()
        finally:
            controller.stop()
    result = {
        "invoices": invoices,
        "store_build_s": round(built, 1),
        "html_renders_per_s": round(invoices / html_s, 1),
        "pdfs_per_s": round(invoices / pdf_s, 1),
        "pdf_mean_bytes": size // invoices,
        "notify_messages": done.sent,
        "notify_messages_per_s": round(done.sent / mail_s, 1),
        "smtp_server_received": inbox.n,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
