"""RecordAppender (consumers/kafka_support.py) against the real broker: records appended
straight into kafka-python's accumulator arrive as `send` would deliver them — each on the
partition given, in order, key and value byte for byte — and their futures resolve to
where the broker put them; a record near a batch's size goes through `send`."""

from __future__ import annotations

from collections.abc import Callable

from consumers.kafka_support import RecordAppender, make_producer
from tests.e2e.procs import read_topic


def test_appended_records_arrive_in_order_on_their_partitions(
    kafka_bootstrap: str, kafka_topics: Callable[..., str]
) -> None:
    topic = kafka_topics("appended", partitions=3)
    producer = make_producer(kafka_bootstrap, batch_size=16 * 1024)
    append = RecordAppender(producer, topic)
    # The installed kafka-python is the one it was written for: the direct path is taken.
    assert append._accumulator is not None
    producer.partitions_for(topic)  # metadata, as the publisher's partitioner asks first
    sent = [
        (n % 3, f"customer-{n % 7}".encode(), f'{{"n":{n},"pad":"{"x" * (n % 50)}"}}'.encode())
        for n in range(3000)
    ]
    big = (1, b"customer-big", b'{"big":"' + b"y" * 20_000 + b'"}')  # > batch_size / 2
    sent.insert(1500, big)
    futures = [append(partition, key, value) for partition, key, value in sent]
    metadata = [future.get(timeout=30) for future in futures]
    producer.close(timeout=10)

    records = read_topic(kafka_bootstrap, topic)
    by_partition = {
        p: [(r.key, r.value) for r in sorted(records, key=lambda r: r.offset) if r.partition == p]
        for p in range(3)
    }
    for p in range(3):
        expected = [(k.decode(), v) for q, k, v in sent if q == p]
        assert by_partition[p] == expected
    where = {r.value: (r.partition, r.offset) for r in records}
    assert len(where) == len(sent) == len(records)
    assert [(m.partition, m.offset) for m in metadata] == [where[v] for _, _, v in sent]
