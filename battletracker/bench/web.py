"""The web app under load (issue point 6): boards, rank, around and player lookups.

``players`` synthetic players with 30 days of diffs (``stats.bench.generate``), every
board materialised, then ``battletracker web --workers N`` as a user starts it, and 50
concurrent keep-alive clients in a second process (:mod:`.loadgen`, over loopback). After
a short warm-up (not counted: a serving site is warm), two loads:

- closed loop (each client sends its next request as soon as the answer is in): the
  judged figure, p99 < 50 ms and no errors (any non-2xx answer is one); its throughput,
  the share of answers served from the page cache and the p99 of the others too;
- the same clients with a think time of 0-1 s (people reading pages), for context.

Requests are mixed evenly: a leaderboard page (API), a rank, the players around a
player, a player's stats, and the HTML leaderboard page. The reference is ``/healthz``
measured under the same load: the server's own floor. ``database`` names an existing
database to reuse (seeded on first use), so that large sizes are seeded only once.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text

from ..db import engine_for, make_engine
from ..settings import Settings
from ..web.secret import new_secret_key
from .report import Figure, Outcome

__all__ = ["load", "run"]

_BIN = Path(sys.executable).parent
#: Seconds of load before the measured runs.
WARMUP = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(url: str, paths: list[str], *, clients: int, seconds: float, think: float = 0.0,
         seed: int = 1) -> dict[str, Any]:
    """Run :mod:`.loadgen` in its own process against ``url``; its figures."""
    with tempfile.TemporaryDirectory(prefix="bt_load") as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "battletracker.bench.loadgen", "--url", url,
             "--paths", str(listing), "--clients", str(clients), "--seconds", str(seconds),
             "--think", str(think), "--seed", str(seed)],
            capture_output=True, text=True, timeout=seconds + 120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def _paths(settings: Settings, rng: random.Random, n: int = 2000) -> list[str]:
    """``n`` requests, an even mix of the five kinds; a rank or around asks for a player
    ranked on that board, on its own platform or on both (so every answer is a 200)."""
    from ..stats.interfaces import WINDOWS
    from ..stats.materialise import leaf_name, platform_sql
    from ..stats.registry import default_registry

    boards = list(default_registry().scorers())
    with engine_for(settings).connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM players")).scalar_one()
        sample = {
            (b, w): [
                (int(r[0]), str(r[1]))
                for r in conn.execute(text(
                    f"SELECT account_id, {platform_sql('account_id')} FROM {leaf_name(b, w)} "
                    "TABLESAMPLE SYSTEM (2) LIMIT 200"))
            ] or [
                (int(r[0]), str(r[1]))
                for r in conn.execute(text(
                    f"SELECT account_id, {platform_sql('account_id')} FROM {leaf_name(b, w)} "
                    "LIMIT 200"))
            ]
            for b in boards
            for w in WINDOWS
        }
        known = list(
            conn.execute(
                text("SELECT account_id FROM players TABLESAMPLE SYSTEM (2) LIMIT 500")
            ).scalars()
        ) or list(conn.execute(text("SELECT account_id FROM players LIMIT 500")).scalars())
    ranked = [(k, v) for k, v in sample.items() if v]
    paths = []
    for i in range(n):
        (board, window), entries = rng.choice(ranked)
        account, own = rng.choice(entries)
        platform = rng.choice(("all", own))
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


@contextmanager
def _database(players: int, days: int, name: str | None) -> Iterator[Settings]:
    """A database holding ``players`` and their boards: a throwaway one, or ``name``
    (created and seeded when it does not hold that many players yet, kept afterwards)."""
    from ..migrate import upgrade
    from ..stats.bench import AS_OF, generate
    from ..stats.materialise import materialise
    from ..testing.databases import admin_url, temporary_database

    def seed(settings: Settings) -> None:
        engine = engine_for(settings)
        with engine.begin() as conn:
            generate(conn, players=players, days=days, active=0.08)
        materialise(engine, AS_OF)

    if name is None:
        with temporary_database(Settings(), prefix="bt_bench") as settings:
            seed(settings)
            yield settings
        return
    admin = make_engine(admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    settings = Settings().replace(database_url=url)
    upgrade(settings)
    with engine_for(settings).connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM players")).scalar_one()
        built = conn.execute(text("SELECT count(*) FROM leaderboard_builds")).scalar_one()
    if have and have != players:
        raise RuntimeError(f"database {name} holds {have} players, not {players}")
    if not have:
        seed(settings)
    elif not built:  # a migration dropped the boards (0010): build them again, only them
        materialise(engine_for(settings), AS_OF)
    yield settings


def run(
    *, players: int = 100_000, clients: int = 50, seconds: float = 20.0, days: int = 30,
    workers: int = 2, database: str | None = None,
) -> Outcome:
    outcome = Outcome("web", {"players": players, "clients": clients, "seconds": seconds,
                              "workers": workers})
    started = time.monotonic()
    with _database(players, days, database) as settings:
        paths = _paths(settings, random.Random(3))
        port = _free_port()
        env = {
            **os.environ,
            "BATTLETRACKER_DATABASE_URL": settings.database_url,
            "BATTLETRACKER_SECRET_KEY": new_secret_key(),
        }
        server = subprocess.Popen(
            [str(_BIN / "battletracker"), "web", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--no-access-log"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, server)
            load(url, paths, clients=clients, seconds=WARMUP, seed=2)
            load_before = os.getloadavg()
            closed = load(url, paths, clients=clients, seconds=seconds)
            paced = load(url, paths, clients=clients, seconds=seconds, think=1.0)
            load_after = os.getloadavg()
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
            closed["errors"],
            reference=closed["requests"],
            reference_label="requests",
        )
    ).equals(0)
    outcome.add(Figure("throughput, closed loop", closed["rps"], "req/s"))
    outcome.add(Figure("p50 ms, closed loop", closed["p50"], "ms"))
    outcome.add(Figure("share served from the page cache", closed["hit_share"]))
    outcome.add(Figure("p99 ms of the others (cache misses)", closed["miss_p99"], "ms"))
    outcome.add(
        Figure(
            "p99 ms, 0-1 s think time",
            paced["p99"],
            "ms",
            reference=paced["health_p99"],
            reference_label="/healthz p99",
        )
    )
    outcome.add(Figure("errors, think time", paced["errors"])).equals(0)
    outcome.add(Figure("throughput, think time", paced["rps"], "req/s"))
    if closed["errors"] or paced["errors"]:
        outcome.notes.append(
            "first errors: " + "; ".join((closed["first_errors"] + paced["first_errors"])[:5]))
    outcome.notes.append(
        f"battletracker web --workers {workers} --no-access-log; "
        f"{len(set(paths))} distinct requests; load from a second process "
        f"(battletracker.bench.loadgen) on the same "
        f"{os.cpu_count()} cores; load average before/after the measured runs "
        f"{', '.join(f'{x:.1f}' for x in load_before)} / "
        f"{', '.join(f'{x:.1f}' for x in load_after)}"
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
