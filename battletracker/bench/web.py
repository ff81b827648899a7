"""The web app under load (issue point 6): boards, rank, around and player lookups.

``players`` synthetic players with 30 days of diffs (``stats.bench.generate``), every
board materialised, then ``battletracker web`` in its own process and 50 concurrent
clients in this one (a second process, over loopback). Two loads:

- closed loop (each client sends its next request as soon as the answer is in): the
  judged figure, p99 < 50 ms and no errors; its throughput is reported too;
- the same clients with a think time of 0-1 s (people reading pages), for context.

Requests are mixed evenly: a leaderboard page (API), a rank, the players around a
player, a player's stats, and the HTML leaderboard page. The reference is ``/healthz``
measured under the same load: the server's own floor.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from ..db import engine_for
from ..settings import Settings
from .report import Figure, Outcome

__all__ = ["load", "run"]

_BIN = Path(sys.executable).parent


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(
    url: str, paths: list[str], *, clients: int, seconds: float, think: float = 0.0, seed: int = 1
) -> dict[str, Any]:
    """``clients`` concurrent clients requesting random ``paths`` for ``seconds``."""
    rng = random.Random(seed)
    latencies: list[float] = []
    health: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            while time.monotonic() < deadline:
                path = paths[rng.randrange(len(paths))] if i else "/healthz"
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    ok = r.status_code in (200, 404) and (
                        r.status_code == 200 or "/rank/" in path or "/around/" in path
                    )
                    if not ok:
                        errors.append(f"{r.status_code} {path}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__} {path}")
                (latencies if i else health).append((time.perf_counter() - t0) * 1000)
                if think:
                    await asyncio.sleep(rng.uniform(0, think))

        t0 = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(clients + 1)))  # +1: the healthz probe
        elapsed = time.monotonic() - t0
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "errors": errors,
        "p50": _pct(latencies, 0.5),
        "p99": _pct(latencies, 0.99),
        "health_p99": _pct(health, 0.99),
    }


def _paths(settings: Settings, rng: random.Random, n: int = 2000) -> list[str]:
    from ..stats.interfaces import PLATFORMS, WINDOWS
    from ..stats.materialise import leaf_name
    from ..stats.registry import default_registry

    boards = list(default_registry().scorers())
    with engine_for(settings).connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM players")).scalar_one()
        sample = {
            (b, w): list(
                conn.execute(
                    text(
                        f"SELECT account_id FROM {leaf_name(b, w)} TABLESAMPLE SYSTEM (2) LIMIT 200"
                    )
                ).scalars()
            )
            for b in boards
            for w in WINDOWS
        }
        known = list(
            conn.execute(
                text("SELECT account_id FROM players TABLESAMPLE SYSTEM (2) LIMIT 500")
            ).scalars()
        ) or list(conn.execute(text("SELECT account_id FROM players LIMIT 500")).scalars())
    sample = {k: v or known for k, v in sample.items()}  # an empty board: ask anyway (404)
    paths = []
    for i in range(n):
        board, window, platform = rng.choice(boards), rng.choice(WINDOWS), rng.choice(PLATFORMS)
        account = rng.choice(sample[board, window])
        kind = i % 5
        if kind == 0:
            offset = rng.randrange(0, max(1, min(total, 100_000) - 50))
            paths.append(
                f"/api/v1/boards/{board}?window={window}&platform={platform}"
                f"&offset={offset}&limit=50"
            )
        elif kind == 1:
            paths.append(
                f"/api/v1/boards/{board}/rank/{account}?window={window}&platform={platform}"
            )
        elif kind == 2:
            paths.append(
                f"/api/v1/boards/{board}/around/{account}?window={window}&platform={platform}&n=5"
            )
        elif kind == 3:
            paths.append(f"/api/v1/players/{rng.choice(known)}")
        else:
            paths.append(f"/boards/{board}?window={window}&platform={platform}")
    return paths


def run(
    *, players: int = 100_000, clients: int = 50, seconds: float = 20.0, days: int = 30
) -> Outcome:
    from ..stats.bench import AS_OF, generate
    from ..stats.materialise import materialise
    from ..testing.databases import temporary_database

    outcome = Outcome("web", {"players": players, "clients": clients, "seconds": seconds})
    started = time.monotonic()
    with temporary_database(Settings(), prefix="bt_bench") as settings:
        engine = engine_for(settings)
        with engine.begin() as conn:
            generate(conn, players=players, days=days, active=0.08)
        materialise(engine, AS_OF)
        paths = _paths(settings, random.Random(3))
        port = _free_port()
        env = {
            **os.environ,
            "BATTLETRACKER_DATABASE_URL": settings.database_url,
            "BATTLETRACKER_SECRET_KEY": secrets.token_hex(32),
        }
        server = subprocess.Popen(
            [str(_BIN / "battletracker"), "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, server)
            closed = asyncio.run(load(url, paths, clients=clients, seconds=seconds))
            paced = asyncio.run(load(url, paths, clients=clients, seconds=seconds, think=1.0))
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    outcome.add(
        Figure(
            "p99 ms, 50 clients closed loop",
            closed["p99"],
            "ms",
            reference=closed["health_p99"],
            reference_label="/healthz p99",
        )
    ).below(50)
    outcome.add(
        Figure(
            "errors, closed loop",
            len(closed["errors"]),
            reference=closed["requests"],
            reference_label="requests",
        )
    ).equals(0)
    outcome.add(Figure("throughput, closed loop", closed["rps"], "req/s"))
    outcome.add(Figure("p50 ms, closed loop", closed["p50"], "ms"))
    outcome.add(
        Figure(
            "p99 ms, 0-1 s think time",
            paced["p99"],
            "ms",
            reference=paced["health_p99"],
            reference_label="/healthz p99",
        )
    )
    outcome.add(Figure("errors, think time", len(paced["errors"]))).equals(0)
    outcome.add(Figure("throughput, think time", paced["rps"], "req/s"))
    if closed["errors"] or paced["errors"]:
        outcome.notes.append("first errors: " + "; ".join((closed["errors"] + paced["errors"])[:5]))
    outcome.notes.append(
        "one uvicorn process (battletracker web); load from the benchmark "
        "process on the same 2 cores"
    )
    outcome.seconds = time.monotonic() - started
    return outcome


def _wait_up(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"battletracker web exited: {err[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("battletracker web did not come up")
