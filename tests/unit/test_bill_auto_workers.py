"""The default `--workers` of `ledger bill partner-center` (ledger.cli.bill.auto_workers): two
processes for a file of 10 MB or more, when they can be used and the machine has the cores;
and the cores a process can use (ledger.process.usable_cores: affinity, a container's quota)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.cli import bill
from ledger.process import usable_cores


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
    monkeypatch.setattr(bill, "usable_cores", lambda: cores)
    assert bill.auto_workers(sized(tmp_path, size), usable) == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, None),  # no cgroup files: the affinity alone
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, no quota
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 cores of quota: 2 busy workers
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu.max": "garbage\n"}, None),  # unreadable: the affinity, never 0
    ],
)
def test_usable_cores_is_the_affinity_or_a_containers_smaller_quota(
    files: dict[str, str], expected: int | None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(8)))
    assert usable_cores(tmp_path) == (8 if expected is None else expected)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert usable_cores(tmp_path) == 1
