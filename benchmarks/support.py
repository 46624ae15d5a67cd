"""Plumbing shared by the benchmarks: scratch databases and topics, child processes and their
peak memory, percentiles, the machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://ledger:ledger@127.0.0.1:5432/ledger"
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


def server_url() -> str:
    return os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL


def bootstrap() -> str:
    return os.environ.get("LEDGER_KAFKA_BOOTSTRAP") or DEFAULT_BOOTSTRAP


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def create_database(label: str) -> str:
    import psycopg

    name = f"ledger_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(server_url(), name)


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(label: str) -> Iterator[str]:
    url = create_database(label)
    try:
        yield url
    finally:
        drop_database(url)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def services_cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the PostgreSQL server processes and the Kafka broker (a java
    process running kafka.Kafka); processes that cannot be read count as 0."""
    totals = {"postgresql": 0.0, "kafka": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                name = comm.read().strip()
            if name == "java":
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if b"kafka.Kafka" not in cmdline.read():
                        continue
        except OSError:
            continue
        kind = {"postgres": "postgresql", "java": "kafka"}.get(name)
        if kind:
            totals[kind] += cpu_seconds(int(entry)) or 0.0
    return totals


class Child:
    """A child process (`ledger …` or a helper script) whose peak RSS is read before it stops."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        self.peak_mb: float | None = None
        self.cpu: float | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def sample(self) -> None:
        peak = peak_rss_mb(self.proc.pid)
        if peak is not None:
            self.peak_mb = max(self.peak_mb or 0.0, peak)
        cpu = cpu_seconds(self.proc.pid)
        if cpu is not None:
            self.cpu = cpu

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (the ledger loops finish their batch and exit 0), then wait."""
        self.sample()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        """Wait for a process that ends by itself, sampling its peak RSS meanwhile."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.sample()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not finish within {timeout:.0f} s")
            time.sleep(0.05)
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    total = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                total = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": total,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": os.getloadavg(),
    }


def backends_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the database of `url`
    (but the connection that asks)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pids = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return {pid: cpu for (pid,) in pids if (cpu := cpu_seconds(pid)) is not None}


@dataclass
class Measured:
    """What `measured` saw of its block: wall seconds, this process's CPU seconds, its
    database backends' CPU seconds, and the cProfile table (empty without a profile)."""

    elapsed: float = 0.0
    cpu: float = 0.0
    backends: float = 0.0
    profile: str = ""


@contextmanager
def measured(url: str, profile: bool = False, dump: Path | None = None,
             top: int = 40) -> Iterator[Measured]:  # fmt: skip
    """Time the block (wall, this process's CPU, the CPU of the PostgreSQL backends of `url`,
    read from /proc), optionally under cProfile (stats saved to `dump` when given)."""
    import cProfile
    import io
    import pstats

    result = Measured()
    profiler = cProfile.Profile(time.process_time) if profile else None
    backends_before = backends_cpu(url)
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    yield result
    if profiler:
        profiler.disable()
    result.elapsed = time.perf_counter() - started
    result.cpu = time.process_time() - cpu_started
    result.backends = sum(cpu - backends_before.get(pid, 0.0)
                          for pid, cpu in backends_cpu(url).items())  # fmt: skip
    if profiler:
        if dump:
            profiler.dump_stats(dump)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
        result.profile = out.getvalue()
