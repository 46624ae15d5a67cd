"""Billing one Partner Center file on several processes (`ledger bill partner-center
--workers N`, SPEC §10).

A line costs ~170-200 µs of one core from the file to the stored event (parse, price,
validate, decide, hash-chain, store), so one process bills ~5,000-6,000 lines per
CPU-second. Each customer's charges are independent of every other customer's, so the file is
split by customer, `crc32(customer id) % N` — the split `ledger rebuild --workers` uses — and
each worker process bills its share through the normal ingest path on its own connection;
PostgreSQL serialises only the insert into the notification log (ledger.store.pgrecorder).

How it stays exactly-once:
- the parent reads the whole file first (`scan_file`): a malformed file is refused before
  any worker starts, as in one process; that pass notes each physical line's share (one
  byte a line), so a worker parses the header and its own lines only, numbered as in the
  file. Each worker reads the file again from disk, and stops at the first sign that it is
  not the file the parent checked (recon_source.FileChanged);
- the charge ids are those of one process: identical lines have the same customer, so each
  worker counts them in file order within its share (`ChargeIds`);
- each worker's batches are ingest batches: a charge id is decided once store-wide, in the
  transaction of its events. Killed anywhere, a run leaves whole batches behind, and billing
  the same file again bills each line once (the rest are duplicates);
- a worker whose parent is gone stops before its next batch (no orphan keeps writing).

The workers are forked (POSIX): they share the modules and the price book the parent loaded.
The parent forks before it opens any connection or thread.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import structlog

from ledger.app.billing import (
    BillingReport,
    CustomerLookup,
    DecisionLookup,
    FileSummary,
    Send,
    bill_text,
    log_report,
    share_of,
)
from ledger.domain.pricebook import PriceBook

log = structlog.get_logger(__name__)

# What a worker opens in its own process: (customer lookup, send, decision lookup).
WorkerStore = Callable[[], AbstractContextManager[tuple[CustomerLookup, Send, DecisionLookup]]]


class BillingWorkersFailed(RuntimeError):
    """One or more workers did not finish their share: what each said (or how it ended).
    The batches sent are complete; billing the same file again bills the rest."""


def shard_of(customer_id: str, shards: int) -> int:
    """A customer's share: stable across processes and runs (unlike hash())."""
    return share_of(customer_id, shards)


def merge(summary: FileSummary, parts: list[BillingReport]) -> BillingReport:
    """One report of the shares' reports (each customer is in one share only)."""
    report = BillingReport(summary.invoice_number, summary.billing_period, summary.lines)
    for part in parts:
        report.billed += part.billed
        report.duplicates += part.duplicates
        report.not_billed.extend(part.not_billed)
        report.customers.update(part.customers)
    report.not_billed.sort(key=lambda item: item["line"])
    return report


def _work(
    conn: Connection,
    shard: int,
    shards: int,
    parent: int,
    text: str | Path,
    summary: FileSummary,
    book: PriceBook,
    store: WorkerStore,
    source: str,
) -> None:
    """A worker: bill the lines of its share, report progress and the result on `conn`."""
    try:
        with store() as (customers, send, decided):
            # The lines of its share only (scan_file(shards=N) noted each line's), else each
            # line's customer tells.
            keep = None if summary.owners is not None else \
                (lambda customer_id: shard_of(customer_id, shards) == shard)  # fmt: skip
            report = bill_text(
                text, summary, book, customers, send, source=source, decided=decided,
                keep=keep, share=shard,
                progress=lambda done, _total: conn.send(("progress", done)),
                stop=lambda: os.getppid() != parent,
            )  # fmt: skip
        conn.send(("done", report))
    except BaseException as error:  # reported to the parent, which fails the run
        log.warning("billing.worker_stopped", shard=shard, error=f"{type(error).__name__}: {error}")
        with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            conn.send(("failed", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


def _results(
    connections: dict[Connection, int], processes: list[Any],
    progress: Callable[[int, int], None] | None, total: int,
) -> Iterator[tuple[int, str, Any]]:  # fmt: skip
    """(shard, "done"/"failed", report or reason) of each worker as it ends; progress as it
    comes. A worker that ends without a word (killed) is "failed"."""
    open_ = dict(connections)
    while open_:
        for conn in wait(list(open_)):
            assert isinstance(conn, Connection)
            shard = open_[conn]
            try:
                kind, value = conn.recv()
            except EOFError:
                processes[shard].join()
                del open_[conn]
                yield shard, "failed", f"ended without a result (exit code "\
                                       f"{processes[shard].exitcode})"  # fmt: skip
                continue
            if kind == "progress":
                if progress is not None:
                    progress(value, total)
                continue
            del open_[conn]
            yield shard, kind, value


class Workers:
    """Worker processes billing their shares of one file (`start_workers`)."""

    def __init__(self, summary: FileSummary, connections: dict[Connection, int],
                 processes: list[Any]) -> None:  # fmt: skip
        self.summary = summary
        self._connections = connections
        self._processes = processes

    def collect(self, progress: Callable[[int, int], None] | None = None) -> BillingReport:
        """Wait for every worker (progress as they report it) and return the merged report.
        Raises BillingWorkersFailed after every worker ended when any failed."""
        parts: list[BillingReport] = []
        failures: list[str] = []
        results = _results(self._connections, self._processes, progress, self.summary.lines)
        for shard, kind, value in results:
            if kind == "done":
                parts.append(value)
            else:
                log.error("billing.worker_failed", shard=shard, reason=value)
                failures.append(f"worker {shard}: {value}")
        for process in self._processes:
            process.join()
        if failures:
            raise BillingWorkersFailed(
                "; ".join(failures) + " (the batches sent are complete: bill the same file"
                " again to bill the rest)"
            )
        report = merge(self.summary, parts)
        log_report(report)
        return report


def start_workers(
    text: str | Path,
    summary: FileSummary,
    book: PriceBook,
    store: WorkerStore,
    *,
    workers: int,
    source: str = "partner-center",
) -> Workers:
    """Fork `workers` processes that bill the file `scan_file` read (its text, or its path:
    each worker reads it again), each opening its own store (`store()`: the customer lookup,
    the ingest send and the decision lookup). Call it before this process starts any thread
    (a progress bar's, a connection pool's): a thread holding a lock at the fork would leave
    that lock held forever in the workers."""
    if summary.owners is not None and summary.shares != workers:
        raise ValueError(f"the file was split in {summary.shares} shares, not {workers}")
    if threading.active_count() > 1:
        raise RuntimeError("billing workers are forked before any other thread starts")
    # What the parent holds (the modules, a file's text) stays shared with the workers
    # only while nobody writes to its pages: the cyclic GC would, as it walks the objects.
    gc.collect()
    gc.freeze()
    context = multiprocessing.get_context("fork")
    connections: dict[Connection, int] = {}
    processes = []
    for shard in range(workers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_work, name=f"ledger-bill-{shard}",
            args=(send, shard, workers, os.getpid(), text, summary, book, store, source),
        )  # fmt: skip
        process.start()
        send.close()  # the child's end: EOF here once the child is gone
        connections[receive] = shard
        processes.append(process)
    log.info("billing.workers_started", workers=workers, lines=summary.lines)
    return Workers(summary, connections, processes)


__all__ = [
    "BillingWorkersFailed",
    "WorkerStore",
    "Workers",
    "merge",
    "shard_of",
    "start_workers",
]
