"""A keep-alive HTTP/1.1 load generator, run in its own process (``python -m``).

The web benchmark's clients must not share a process (or a GIL) with anything they
measure, and a full HTTP client library costs more per request than the server under
test: this one writes a bare ``GET`` on a kept-alive connection per client and reads the
answer by its ``Content-Length`` (or chunks). Every answer that is not 2xx, a broken or
timed-out connection, counts as an error. Prints one JSON object: requests, throughput,
errors (and the first few), p50/p99 latency in ms, p99 of the answers the server marked
``x-cache: miss``, the share of hits, and the p99 of ``/healthz`` asked by one more
client under the same load.

    python -m battletracker.bench.loadgen --url http://127.0.0.1:8000 --paths paths.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Result", "main", "run"]

#: A request taking longer than this is an error (and its connection is dropped).
TIMEOUT = 30.0


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    miss_latencies: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hits: int = 0


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if b":" in line:
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        return status, headers, b"".join(p[:-2] for p in parts)
    length = int(headers.get(b"content-length", b"0"))
    return status, headers, await reader.readexactly(length)


async def _client(host: str, port: int, paths: list[str], deadline: float, think: float,
                  rng: random.Random, result: Result, health: bool, extra: str) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < deadline:
        path = "/healthz" if health else paths[rng.randrange(len(paths))]
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(request)
            status, headers, _ = await asyncio.wait_for(_read_answer(reader), TIMEOUT)
            if headers.get(b"connection", b"").lower() == b"close":
                writer.close()
                writer = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            status, headers = 0, {}
            result.errors.append(f"{type(exc).__name__} {path}")
            if writer is not None:
                writer.close()
            writer = None
        ms = (time.perf_counter() - t0) * 1000
        if status and not 200 <= status < 300:
            result.errors.append(f"{status} {path}")
        if health:
            result.health.append(ms)
        else:
            result.latencies.append(ms)
            if headers.get(b"x-cache") == b"hit":
                result.hits += 1
            else:
                result.miss_latencies.append(ms)
        if think:
            await asyncio.sleep(rng.uniform(0, think))
    if writer is not None:
        writer.close()


async def run(url: str, paths: list[str], *, clients: int, seconds: float,
              think: float = 0.0, seed: int = 1, headers: tuple[str, ...] = ()
              ) -> dict[str, Any]:
    """``clients`` concurrent clients asking random ``paths`` for ``seconds`` (and one
    more asking ``/healthz``), each request with ``headers`` (``"Name: value"``) too;
    returns the figures described in the module."""
    extra = "".join(f"{h}\r\n" for h in headers)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = Result()
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    await asyncio.gather(*(
        _client(host, port, paths, deadline, think, random.Random(seed * 1000 + i), result,
                health=(i == clients), extra=extra)
        for i in range(clients + 1)))
    elapsed = time.monotonic() - t0
    n = len(result.latencies)
    return {
        "requests": n,
        "rps": n / elapsed if elapsed else 0.0,
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "p50": _pct(result.latencies, 0.5),
        "p99": _pct(result.latencies, 0.99),
        "miss_p99": _pct(result.miss_latencies, 0.99),
        "hit_share": result.hits / n if n else 0.0,
        "health_p99": _pct(result.health, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--paths", required=True, help="a file of paths, one a line")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--think", type=float, default=0.0, help="max think time, s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--header", action="append", default=[],
                        help="'Name: value' sent with every request (repeatable)")
    args = parser.parse_args(argv)
    with open(args.paths) as fh:
        paths = [ln.strip() for ln in fh if ln.strip()]
    try:
        import uvloop
    except ImportError:  # the plain loop is fine, just slower
        runner = asyncio.run
    else:
        runner = uvloop.run
    figures = runner(run(args.url, paths, clients=args.clients, seconds=args.seconds,
                         think=args.think, seed=args.seed, headers=tuple(args.header)))
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
