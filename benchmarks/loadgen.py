"""Open-loop HTTP load at a fixed request rate (loopback only), for the API benchmark.

Request i is due at start + i/rate whatever happened to the earlier ones, and its latency is
measured from that due time (so a slow server is not hidden by a client that waits for it:
no coordinated omission). Keep-alive HTTP/1.1 connections over raw asyncio sockets, so the
client costs little CPU next to the server it measures; with --new-connections, a new TCP
connection for each request (`Connection: close`), as clients without keep-alive do.

    loadgen.py --url http://127.0.0.1:8000 --token T --paths-file paths.txt
               --rate 500 --duration 20 --warmup 2 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
from pathlib import Path
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    assert host in ("127.0.0.1", "localhost", "::1"), "loopback only"
    paths = Path(args.paths_file).read_text().split()
    rng = random.Random(args.seed)
    idle: list[Connection] = []
    opened = 0
    latencies: list[float] = []
    answered: list[int] = []  # the status of each latency
    statuses: dict[int, int] = {}
    errors = retried = 0

    async def connection(fresh: bool) -> Connection:
        nonlocal opened
        if idle and not fresh:
            return idle.pop()
        opened += 1
        reader, writer = await asyncio.open_connection(host, port)
        return Connection(reader, writer)

    async def one(due: float, path: str, record: bool) -> None:
        nonlocal errors, retried
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        close = "Connection: close\r\n" if args.new_connections else ""
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{close}"
                   f"Authorization: Bearer {args.token}\r\n\r\n").encode()  # fmt: skip
        status = 0
        for attempt in range(2):
            conn = None
            try:
                conn = await connection(fresh=attempt > 0 or args.new_connections)
                status = await conn.get(request)
                break
            except (OSError, asyncio.IncompleteReadError, ValueError):
                # An idle connection the server closed (uvicorn keeps them 5 s): the request
                # goes again on a new one, its latency still counted from its due time.
                if conn is not None:
                    conn.writer.close()
                retried += 1
        if not status:
            errors += 1
            return
        finished = time.perf_counter()
        if args.new_connections:
            conn.writer.close()
        else:
            idle.append(conn)
        if record:
            latencies.append(finished - due)
            answered.append(status)
            statuses[status] = statuses.get(status, 0) + 1

    total = int(args.rate * (args.warmup + args.duration))
    warm = int(args.rate * args.warmup)
    start = time.perf_counter() + 0.2
    tasks = [
        asyncio.ensure_future(one(start + i / args.rate, rng.choice(paths), i >= warm))
        for i in range(total)
    ]
    # The 10,000+ pending tasks made every full collection of the cyclic garbage collector
    # here a pause of tens of milliseconds, counted as the server's latency (a run of late
    # requests every few seconds): this short-lived tool creates no cycles worth collecting.
    gc.disable()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.warmup + args.duration + 30)
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.writer.close()
    return {
        "requests": len(latencies), "rate": args.rate, "seconds": elapsed,
        "latencies_ms": [round(x * 1000, 3) for x in latencies], "answered": answered,
        "statuses": statuses, "new_connections": args.new_connections,
        "errors": errors, "retried": retried, "connections": opened,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--paths-file", required=True)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--new-connections", action="store_true",
                        help="a new TCP connection per request (no keep-alive)")  # fmt: skip
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
