"""Forked billing workers (ledger.app.billing_shards) read the file again from disk, each on
its own: a file changed after the parent checked it is refused by every worker before a line
is sent, and the run fails saying so; unchanged, the shares send what one process sends."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.app.billing import (
    CustomerLookup,
    DecisionLookup,
    Send,
    bill_text,
    lookup_from_registrations,
    scan_file,
)
from ledger.app.billing_shards import BillingWorkersFailed, start_workers
from ledger.app.ingest import IngestCounts, RawRecord
from ledger.domain.pricebook import PriceBook
from tests.unit.test_billing import csv_bytes, row
from tests.unit.test_recon_source import after_a_clock_tick

BOOK = PriceBook.markup("10")
CUSTOMERS = lookup_from_registrations(lambda _: {"currency": "USD"})


def _file(tmp_path: Path) -> Path:
    rows = [row(CustomerId=f"cust-{n % 4}", SubscriptionId=f"sub-{n}") for n in range(40)]
    path = tmp_path / "invoice.csv"
    path.write_bytes(csv_bytes(rows))
    return path


def _store(log: Path) -> Callable[[], Any]:
    """Each worker's store: what it sends is appended to `log` (one charge id a line)."""

    @contextmanager
    def store() -> Iterator[tuple[CustomerLookup, Send, DecisionLookup]]:
        def send(batch: list[RawRecord]) -> IngestCounts:
            with log.open("a") as out:
                out.writelines(orjson.loads(r.value)["charge_id"] + "\n" for r in batch)
            return IngestCounts(applied=len(batch))

        yield CUSTOMERS, send, lambda _keys: {}

    return store


def _one_process(path: Path) -> list[str]:
    sent: list[str] = []

    def send(batch: list[RawRecord]) -> IngestCounts:
        sent.extend(orjson.loads(r.value)["charge_id"] for r in batch)
        return IngestCounts(applied=len(batch))

    bill_text(path, scan_file(path), BOOK, CUSTOMERS, send)
    return sent


def _in_a_fresh_process(scenario: Callable[..., None], *args: str) -> None:
    """Run `scenario` in a new interpreter, its failures raised here: start_workers forks only
    from a process with no other thread, and tests before this one may have left threads in
    pytest's process (a connection pool, a server)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:  # may fork (not daemonic)
        pool.submit(scenario, *args).result()


def _two_workers(tmp: str) -> None:
    path, log = _file(Path(tmp)), Path(tmp) / "sent.txt"
    summary = scan_file(path, shards=2)
    report = start_workers(path, summary, BOOK, _store(log), workers=2).collect()
    assert report.billed == 40
    assert sorted(log.read_text().split()) == sorted(_one_process(path))


def test_two_workers_send_what_one_process_sends(tmp_path: Path) -> None:
    _in_a_fresh_process(_two_workers, str(tmp_path))


def _changed_after_the_check(change: str, tmp: str) -> None:
    path, log = _file(Path(tmp)), Path(tmp) / "sent.txt"
    summary = scan_file(path, shards=2)
    raw = path.read_bytes()
    if change == "appended":
        with path.open("ab") as file:
            file.write(raw.splitlines(keepends=True)[-1])
    elif change == "replaced":  # the same bytes, another file
        path.unlink()
        path.write_bytes(raw)
    else:  # rewritten in place, the same size, the modification time put back (cp -p)
        stat = path.stat()
        after_a_clock_tick(stat)
        path.write_bytes(raw.replace(b"sub-1,", b"sub-9,", 1))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    running = start_workers(path, summary, BOOK, _store(log), workers=2)
    try:
        running.collect()
    except BillingWorkersFailed as failed:
        said = str(failed)
    else:
        raise AssertionError("the workers billed a file changed after its check")
    assert said.count("FileChanged") == 2 and said.count("not the file that was checked") == 2
    assert str(path) in said
    assert not log.exists()  # nothing sent


@pytest.mark.parametrize("change", ["appended", "replaced", "touched"])
def test_a_file_changed_after_the_check_is_refused_by_every_worker(
    change: str, tmp_path: Path
) -> None:
    _in_a_fresh_process(_changed_after_the_check, change, str(tmp_path))
