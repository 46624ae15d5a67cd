"""The Python runtime of a long ledger command (`ledger consume|publish|project|ingest`,
`ledger bill partner-center`): its cyclic garbage collector, and the cores it may use.

Each message or line makes and drops a dozen containers (a validated message, its event,
the state's dicts), so the collector's young generation, collected every 700 allocations by
default, walked them all the time: ~10 % of a billing line's CPU, ~5 % of an ingest
message's (benchmarks/profile_billing.py, profile_ingest.py). None of them is cyclic
garbage; the collector still runs, less often.
"""

from __future__ import annotations

import gc
import math
import os
from pathlib import Path

# Young-generation collections every 10,000 allocations instead of 700.
GC_THRESHOLD = (10_000, 10, 10)


def tune_gc() -> None:
    """What exists now (modules, settings, a price book, a file's text) is frozen out of every
    later collection, and collections run less often (GC_THRESHOLD). Once, at the start of
    the command's work (forked workers inherit it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup: Path = CGROUP) -> int:
    """How many cores this process can keep busy (>= 1): the CPUs it may run on (affinity),
    fewer when its container's CPU quota is smaller (cgroup v2 `cpu.max` "200000 100000" = 2
    cores; cgroup v1 `cpu/cpu.cfs_quota_us` over `cfs_period_us`). What the commands' default
    worker counts are made of (`ledger bill`, `ledger projections rebuild`, `ledger serve`, the
    audit's chain scan): a worker more than the cores only takes turns."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_quota(cgroup)
    return max(1, min(cores or 1, quota) if quota is not None else cores or 1)


def _cgroup_quota(cgroup: Path) -> int | None:
    """The container's CPU quota in whole cores (rounded up), None when it has none."""
    try:
        fields = (cgroup / "cpu.max").read_text().split()
        if len(fields) == 2 and fields[0] != "max":
            return math.ceil(int(fields[0]) / int(fields[1]))
        if fields:
            return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None
