"""With Kafka, `ledger audit checkpoint` also publishes the checkpoint on
`ledger.checkpoints` (SPEC §13): the very line appended to the file, keyed by its id, so a
copy lives where the database's writers cannot reach; a copy kept there verifies the store."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.procs import read_topic
from tests.helpers import LEDGER_CLI, customer_registered, jsonl, run_cli

pytestmark = pytest.mark.integration

KEY = "5a" * 32


def test_checkpoint_is_published_on_its_topic_and_verifies_from_there(
    fresh_pg_url: Callable[[], str],
    kafka_bootstrap: str,
    kafka_topics: Callable[..., str],
    tmp_path: Path,
) -> None:
    url = fresh_pg_url()
    topic = kafka_topics("checkpoints", partitions=1)
    result = run_cli(url, "ingest", "-", stdin=jsonl([customer_registered("contoso")]),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=url, LEDGER_KAFKA_BOOTSTRAP=kafka_bootstrap,
               LEDGER_TOPIC_CHECKPOINTS=topic, LEDGER_AUDIT_KEY=KEY)  # fmt: skip
    out = tmp_path / "checkpoints.jsonl"
    taken = subprocess.run([LEDGER_CLI, "audit", "checkpoint", "--out", str(out)], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert taken.returncode == 0, (taken.stdout, taken.stderr)
    assert topic in taken.stdout

    records = read_topic(kafka_bootstrap, topic)
    assert len(records) == 1
    line = out.read_text().splitlines()[0]
    assert records[0].value.decode() == line
    assert records[0].key == json.loads(line)["checkpoint_id"]
    copy = tmp_path / "from-kafka.jsonl"
    copy.write_text(records[0].value.decode() + "\n")
    env.pop("LEDGER_KAFKA_BOOTSTRAP")
    verified = subprocess.run([LEDGER_CLI, "audit", "verify", "--checkpoints", str(copy)],
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert verified.returncode == 0, (verified.stdout, verified.stderr)
    assert "OK: 1 checkpoints verified" in verified.stdout


def test_a_checkpoint_line_past_the_brokers_default_record_size_is_published_whole(
    kafka_bootstrap: str, kafka_topics: Callable[..., str]
) -> None:
    """Past ~7,000 streams a line exceeds the 1 MB a topic created with the broker's defaults
    takes (the field fault: MessageSizeTooLargeError, exit 1). The topic is made to take it,
    and the record read back is the line, byte for byte."""
    from consumers.checkpoints import publish_checkpoint
    from ledger.config import Settings

    topic = kafka_topics("checkpoints", partitions=1)  # the broker's default max.message.bytes
    heads = [[f"customer-{i:06d}", f"customer-{i:06d}", 7, os.urandom(32).hex()]
             for i in range(20_000)]  # fmt: skip
    checkpoint = {"checkpoint_id": "cp-large", "heads": heads}
    line = json.dumps(checkpoint, separators=(",", ":"))
    assert len(line) > 2 * 1024 * 1024  # random hashes: still > 1 MB after gzip
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_checkpoints=topic)
    publish_checkpoint(settings, checkpoint, line)

    records = read_topic(kafka_bootstrap, topic)
    assert [r.value.decode() for r in records] == [line]
    assert records[0].key == "cp-large"


def test_a_line_larger_than_a_record_may_be_is_refused_naming_both_sizes(
    kafka_bootstrap: str,
) -> None:
    from consumers.checkpoints import (
        MAX_CHECKPOINT_RECORD_BYTES,
        CheckpointTooLargeForKafka,
        publish_checkpoint,
    )
    from ledger.config import Settings

    line = "x" * MAX_CHECKPOINT_RECORD_BYTES
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    with pytest.raises(CheckpointTooLargeForKafka, match=f"{len(line):,} bytes.*67,108,864"):
        publish_checkpoint(settings, {"checkpoint_id": "cp-huge"}, line)
