"""Wait until a Kafka broker answers a real metadata request (readiness for deploy/services).

Exit 0 when the broker answered, 1 on timeout (printing the tail of the broker log if given),
2 on bad usage. Only kafka-python and the standard library: it runs before the project exists.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path


def broker_answers(bootstrap: str, timeout_s: float) -> tuple[bool, str]:
    """One metadata round trip (ApiVersions + Metadata) bounded by `timeout_s`."""
    from kafka.admin import KafkaAdminClient

    budget_ms = max(int(timeout_s * 1000), 500)
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="csp-ledger-wait",
            bootstrap_timeout_ms=budget_ms,
            request_timeout_ms=max(budget_ms, 1000),
        )
        topics = admin.list_topics()
        return True, f"{len(topics)} topic(s)"
    except Exception as exc:  # any failure simply means "not ready yet"
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still accepts signals; it is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - 64 * 1024, 0))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds (default 90)")
    parser.add_argument("--pid", type=int, help="give up early when this process dies")
    parser.add_argument(
        "--log",
        type=Path,
        action="append",
        default=[],
        help="broker log(s) whose tail is printed on failure",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or failure output")
    args = parser.parse_args(argv)

    logging.getLogger("kafka").addHandler(logging.NullHandler())
    logging.getLogger("kafka").propagate = False

    started = time.monotonic()
    deadline = started + args.timeout
    reason = "not tried"
    while True:
        remaining = deadline - time.monotonic()
        ok, reason = broker_answers(args.bootstrap, min(max(remaining, 0.5), 3.0))
        if ok:
            if not args.quiet:
                print(
                    f"kafka: {args.bootstrap} answered metadata ({reason}) after "
                    f"{time.monotonic() - started:.1f}s",
                    file=sys.stderr,
                )
            return 0
        if args.pid is not None and not process_alive(args.pid):
            reason = f"broker process {args.pid} exited ({reason})"
            break
        if time.monotonic() >= deadline:
            reason = f"no metadata answer within {args.timeout:.0f}s ({reason})"
            break
        time.sleep(0.25)

    if not args.quiet:
        print(f"kafka: {args.bootstrap} is not ready: {reason}", file=sys.stderr)
        for log in args.log:
            print(f"----- last lines of {log} -----", file=sys.stderr)
            print(tail(log, 40), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
