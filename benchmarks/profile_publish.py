"""In-process publish throughput: the events of an ingested workload sent by `Publisher`
(as `ledger publish` does, batch after batch) to a scratch Kafka topic, optionally under
cProfile. Prints the CPU per event of this process and of its PostgreSQL backends, next to
kafka-python's raw consume of the same records measured in the same run. With --project,
then one `Projector` (as `ledger project` does, from Kafka) folds them into the read
models, measured (and profiled) the same way: publish + project CPU per event, whole.

    .venv/bin/python benchmarks/profile_publish.py [--messages 20000] [--customers 500]
        [--batch 2000] [--project] [--profile] [--dump FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

from benchmarks.support import bootstrap, measured, scratch_database  # noqa: E402
from benchmarks.workload import Activity, registrations  # noqa: E402
from consumers.kafka_support import StopFlag  # noqa: E402
from consumers.project import Projector  # noqa: E402
from consumers.publish import Publisher  # noqa: E402
from ledger.app.ingest import RawRecord, process_records  # noqa: E402
from ledger.bootstrap import build_app  # noqa: E402
from ledger.config import Settings  # noqa: E402


def raw_consume_seconds(servers: str, topic: str, expected: int) -> float:
    """Wall seconds kafka-python takes to read `expected` records of `topic` from the start."""
    consumer = KafkaConsumer(topic, bootstrap_servers=servers, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    consumer.poll(timeout_ms=1000, max_records=1)
    consumer.seek_to_beginning()
    started, seen = time.perf_counter(), 0
    while seen < expected:
        seen += sum(len(b) for b in consumer.poll(timeout_ms=1000, max_records=5000).values())
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def project(settings: Settings, expected: int, args: argparse.Namespace) -> None:
    """One Projector over the whole topic, from its start, batch after batch."""
    projector = Projector(settings, StopFlag(), max_batch=args.batch)
    try:
        projector.consumer.poll(timeout_ms=0)  # the group join and partition assignment
        with measured(settings.database_url, args.profile, args.dump, args.top) as m:
            seen = 0
            while seen < expected:
                polled = projector.consumer.poll(timeout_ms=500, max_records=args.batch)
                if polled:
                    projector._handle(polled)
                    seen += sum(len(records) for records in polled.values())
        print(f"project: {expected} events in {m.elapsed:.2f} s: {expected / m.elapsed:,.0f}"
              f" events/s{' under cProfile' if args.profile else ''}; CPU per event: this"
              f" process {m.cpu * 1e6 / expected:.1f} µs, its PostgreSQL backends"
              f" {m.backends * 1e6 / expected:.1f} µs")  # fmt: skip
        print(m.profile, end="")
    finally:
        projector.consumer.close(autocommit=False)
        projector.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--project", action="store_true", help="then project them, measured")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", type=Path, help="with --profile: also save the stats here")
    args = parser.parse_args()
    servers = bootstrap()
    topic = f"bench.publish.{uuid.uuid4().hex[:8]}"
    with scratch_database("publish") as url:
        settings = Settings(database_url=url, kafka_bootstrap=servers, topic_events=topic)
        app = build_app(settings)
        messages = [*registrations(args.customers), *Activity(args.customers).take(args.messages)]
        records = [RawRecord(m.value, f"billing.{m.topic}", 0, i, m.key.encode())
                   for i, m in enumerate(messages)]  # fmt: skip
        for start in range(0, len(records), 1000):
            process_records(app, records[start : start + 1000])
        publisher = Publisher(app, settings, StopFlag(), batch_size=args.batch)
        publisher._wait_for_leadership()
        sent = 0
        try:
            with measured(url, args.profile, args.dump, args.top) as m:
                main_thread = time.thread_time()
                while n := publisher.publish_once():
                    sent += n
                publisher._settle()
                main_thread = time.thread_time() - main_thread
            raw = raw_consume_seconds(servers, topic, sent)
            per_record = raw * 1e6 / sent
            print(f"{sent} events in {m.elapsed:.2f} s: {sent / m.elapsed:,.0f} events/s"
                  f"{' under cProfile' if args.profile else ''}; CPU per event: this process"
                  f" {m.cpu * 1e6 / sent:.1f} µs (main thread {main_thread * 1e6 / sent:.1f}, the"
                  f" rest mostly the producer's sender thread), its PostgreSQL backends"
                  f" {m.backends * 1e6 / sent:.1f} µs; raw kafka-python consume of the same"
                  f" records {sent / raw:,.0f} rec/s ({per_record:.1f} µs/record)")  # fmt: skip
            print(m.profile, end="")
            if args.project:
                project(settings, sent, args)
        finally:
            publisher.producer.close(timeout=10)
            publisher.new_events.close()
            app.close()
            admin = KafkaAdminClient(bootstrap_servers=servers)
            admin.delete_topics([topic])
            admin.close()


if __name__ == "__main__":
    main()
