"""The default `--workers` of `ledger bill partner-center` (ledger.cli.bill.auto_workers): two
processes for a file of 10 MB or more, when they can be used and the machine has the cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.cli import bill


def sized(tmp_path: Path, size: int) -> Path:
    path = tmp_path / f"{size}.csv"
    with path.open("wb") as file:
        file.truncate(size)  # sparse: only its size is read
    return path


@pytest.mark.parametrize(
    ("size", "usable", "cores", "expected"),
    [
        (bill.AUTO_WORKERS_FROM_BYTES, True, 2, 2),
        (bill.AUTO_WORKERS_FROM_BYTES, True, 8, 2),
        (bill.AUTO_WORKERS_FROM_BYTES - 1, True, 8, 1),  # start-up outweighs the gain
        (bill.AUTO_WORKERS_FROM_BYTES, False, 8, 1),  # SQLite, a dry run or Kafka
        (bill.AUTO_WORKERS_FROM_BYTES, True, 1, 1),  # one core: two processes would take turns
    ],
)
def test_auto_workers(
    size: int, usable: bool, cores: int, expected: int, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(bill.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert bill.auto_workers(sized(tmp_path, size), usable) == expected
