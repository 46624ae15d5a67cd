"""The benchmarks' second processes: each subcommand does one measured job in its own process
(its own CPU time, its own peak RSS) and writes its figures as JSON to --out.

    produce     write the workload to the ingest topics (as fast as possible, or paced)
    kafka-raw   raw limit: kafka-python consuming the ingest topics and doing nothing
    pg-raw      raw limit: psycopg writing the events' rows into a plain table (COPY / executemany)
    naive       naive peer: one message per transaction through the library's plain path
    generate    build a large event store quickly, in process, through the application
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.workload import Activity, Msg, registrations  # noqa: E402

LIBRARY_RECORDER = "eventsourcing.postgres:PostgresApplicationRecorder"


def _write(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=2))


def _topics(prefix: str) -> dict[str, str]:
    return {kind: f"{prefix}.billing.{kind}" for kind in ("customers", "charges", "payments",
                                                         "support")}  # fmt: skip


# ---------------------------------------------------------------------------------- produce


def produce(args: argparse.Namespace) -> None:
    from kafka import KafkaProducer

    topics = _topics(args.prefix)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
        enable_idempotence=True,
    )  # fmt: skip
    if args.registrations:
        messages = registrations(args.customers)
    else:
        activity = Activity(args.customers, seed=args.seed, tag=args.tag, period=args.period)
        messages = activity.take(args.messages)
    total = len(messages)
    # Everything but the send itself is done before the clock starts: this process shares
    # the CPUs with the system it measures.
    ready = [(topics[m.topic], m.key.encode(), m.value) for m in messages]
    ids = [json.loads(m.value)["message_id"] for m in messages] if args.log_sends else []
    sent: list[float] = []  # wall time each message was sent
    started = time.perf_counter()
    interval = 1.0 / args.rate if args.rate else 0.0
    for i, (topic, key, value) in enumerate(ready):
        if interval:
            due = started + i * interval
            delay = due - time.perf_counter()
            if delay > 0.0005:
                time.sleep(delay)
        producer.send(topic, key=key, value=value)
        if args.log_sends:
            sent.append(time.time())
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    if args.log_sends:
        Path(args.log_sends).write_text("\n".join(
            f"{m}\t{msg.key}\t{t:.6f}" for m, msg, t in zip(ids, messages, sent, strict=True)
        ))  # fmt: skip
    _write(args.out, {"messages": total, "seconds": elapsed, "rate": total / elapsed})


# -------------------------------------------------------------------------------- kafka-raw


def kafka_raw(args: argparse.Namespace) -> None:
    """Same consumer settings as `ledger consume` (consumers.kafka_support.make_consumer)."""
    from consumers.kafka_support import make_consumer

    consumer = make_consumer(args.bootstrap, args.group, max_poll_records=args.batch)
    consumer.subscribe(list(_topics(args.prefix).values()))
    count = 0
    first = last = 0.0
    deadline = time.monotonic() + args.timeout
    while count < args.expect and time.monotonic() < deadline:
        polled = consumer.poll(timeout_ms=500, max_records=args.batch)
        if polled and not first:
            first = time.perf_counter()
        for records in polled.values():
            count += len(records)
        last = time.perf_counter()
    consumer.close(autocommit=False)
    # The first poll's records arrived before `first`: count only those after it.
    _write(args.out, {"records": count, "seconds": last - first,
                      "rate": count / (last - first) if last > first else None})  # fmt: skip


# ----------------------------------------------------------------------------------- pg-raw


def pg_raw(args: argparse.Namespace) -> None:
    """The stored events of the ingest run, written again as plain rows: the database's
    floor for the same bytes in the same transactions (one per `batch` rows)."""
    import psycopg

    with psycopg.connect(args.source) as source:
        rows = source.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events"
            " WHERE notification_id > %s ORDER BY notification_id",
            (args.after,),
        ).fetchall()
    result: dict[str, Any] = {"rows": len(rows), "messages": args.messages}
    with psycopg.connect(args.target) as target:
        for method in ("copy", "executemany"):
            target.execute(f"DROP TABLE IF EXISTS raw_{method}")
            target.execute(
                f"CREATE TABLE raw_{method} (originator_id uuid, originator_version bigint,"
                " topic text, state bytea, notification_id bigserial,"
                " PRIMARY KEY (originator_id, originator_version))"
            )
            target.commit()
            started = time.perf_counter()
            for start in range(0, len(rows), args.batch):
                chunk = rows[start : start + args.batch]
                with target.cursor() as cur:
                    if method == "copy":
                        with cur.copy(
                            f"COPY raw_{method} (originator_id, originator_version, topic,"
                            " state) FROM STDIN (FORMAT BINARY)"
                        ) as copy:
                            copy.set_types(["uuid", "int8", "text", "bytea"])
                            for row in chunk:
                                copy.write_row(row)
                    else:
                        cur.executemany(
                            f"INSERT INTO raw_{method} (originator_id, originator_version,"
                            " topic, state) VALUES (%s, %s, %s, %s)",
                            chunk,
                        )
                target.commit()
            elapsed = time.perf_counter() - started
            result[method] = {
                "seconds": elapsed,
                "rows_per_s": len(rows) / elapsed,
                # The messages whose events these rows are, per second.
                "messages_per_s": args.messages / elapsed,
            }
    _write(args.out, result)


# ------------------------------------------------------------------------------------ naive


def naive(args: argparse.Namespace) -> None:
    """Plain `eventsourcing` usage, one message per transaction: parse, repository.get (the
    whole stream from the database), the command, app.save. No batching, no cache, the
    library's own recorder."""
    from eventsourcing.application import AggregateNotFoundError

    from ledger.app.application import LedgerApplication
    from ledger.app.batching import COMMANDS
    from ledger.domain.account import CustomerAccount, Meta, account_id
    from ledger.domain.errors import LedgerError
    from ledger.messages import parse_message
    from ledger.store.eventstore import eventsourcing_env

    app = LedgerApplication({**eventsourcing_env(args.url), "INGEST_CACHE_MAXSIZE": "0",
                             "APPLICATION_RECORDER_TOPIC": LIBRARY_RECORDER})  # fmt: skip
    clock = app.clock

    def apply(raw: bytes) -> None:
        message = parse_message(raw)
        meta = Meta(message.occurred_at, clock(), message.message_id, message.fingerprint())
        try:
            account = app.repository.get(account_id(message.customer_id))
        except AggregateNotFoundError:
            account = None
        if message.type == "customer_registered":
            if account is None:
                app.save(CustomerAccount.register(message.customer_id, message.to_payload(),
                                                  meta, known_policies=app.policies))  # fmt: skip
            return
        assert isinstance(account, CustomerAccount)
        try:
            if message.type == "customer_updated":
                account.update(message.to_payload(), meta, known_policies=app.policies)
            else:
                getattr(account, COMMANDS[message.type])(message.to_payload(), meta)
        except LedgerError:
            return
        app.save(account)

    for message in registrations(args.customers):
        apply(message.value)
    activity = Activity(args.customers, seed=args.seed, tag=args.tag)
    done = 0
    started = time.perf_counter()
    deadline = started + args.seconds
    while done < args.messages and time.perf_counter() < deadline:
        apply(activity.next().value)
        done += 1
    elapsed = time.perf_counter() - started
    app.close()
    _write(args.out, {"messages": done, "seconds": elapsed, "rate": done / elapsed})


# --------------------------------------------------------------------------------- generate


def generate(args: argparse.Namespace) -> None:
    """A big store, quickly: months of activity through handle_batch in large batches, each
    month closed by an invoice run (so payments settle invoices, as in real life)."""
    from datetime import date

    from ledger.app.application import LedgerApplication
    from ledger.app.ingest import RawRecord, process_records
    from ledger.store.eventstore import eventsourcing_env

    # A data-building tool, not a ledger process: the whole store stays in its cache (the
    # ledger's default budget would evict and reload accounts all the time here).
    app = LedgerApplication({**eventsourcing_env(args.url),
                             "INGEST_CACHE_MAXSIZE": str(args.customers),
                             "INGEST_CACHE_MAX_EVENTS": str(args.events * 2)})  # fmt: skip

    def ingest(messages: list[Msg]) -> None:
        records = [RawRecord(m.value, m.topic, 0, i) for i, m in enumerate(messages)]
        for start in range(0, len(records), args.batch):
            counts = process_records(app, records[start : start + args.batch])
            assert not counts.dead_letters, counts.dead_letters[0]

    started = time.perf_counter()
    ingest(registrations(args.customers))
    month = 0
    while app.head_position() < args.events:
        year, index = divmod(month, 12)
        period = f"{2025 + year}-{index + 1:02d}"
        activity = Activity(args.customers, seed=args.seed + month, tag=f"g{month}-",
                            period=period)  # fmt: skip
        month_end = min(args.events, args.events * (month + 1) // args.months)
        while (head := app.head_position()) < month_end:
            # About 1.15 events per message: aim at the month's share, not past it.
            ingest(activity.take(max(100, min(args.batch, (month_end - head) * 10 // 12))))
        year, index = divmod(month + 1, 12)
        app.run_invoices(period, date(2025 + year, index + 1, 1))
        month += 1
    elapsed = time.perf_counter() - started
    events = app.head_position()
    app.close()
    _write(args.out, {"events": events, "months": month, "seconds": elapsed,
                      "rate": events / elapsed})  # fmt: skip


# ------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.set_defaults(func=func)
        p.add_argument("--out", required=True)
        return p

    p = command("produce", produce)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--registrations", action="store_true")
    p.add_argument("--messages", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tag", default="a")
    p.add_argument("--period", default="2025-03")
    p.add_argument("--rate", type=float, default=0.0, help="messages/s (0: as fast as it can)")
    p.add_argument("--log-sends", default="")

    p = command("kafka-raw", kafka_raw)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=300)

    p = command("pg-raw", pg_raw)
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--after", type=int, default=0, help="only events after this position")
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--batch", type=int, default=1000)

    p = command("naive", naive)
    p.add_argument("--url", required=True)
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tag", default="a")

    p = command("generate", generate)
    p.add_argument("--url", required=True)
    p.add_argument("--customers", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--months", type=int, default=4)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--seed", type=int, default=11)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
