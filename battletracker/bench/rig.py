"""One night through the real pipeline: a database, a vhost, server and fetch workers.

The key-rate and capacity benchmarks differ only in the simulator in front and the
sizes; both start a cycle exactly as ``start_cycle`` does and watch the chunks being
stored, so what they time is the production path, from publish to the last COPY.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from ..db import engine_for
from ..settings import IdRange, Settings
from ..wargaming.simulator import PS_MIN, XBOX_MIN
from ..web.secret import new_secret_key
from .nodes import Enrolment
from .services import Usage, Worker, consumers, management_url, rabbit_vhost

__all__ = ["LeaseWatch", "Night", "PipelineRig", "fetch_app", "pipeline_rig"]

DAY = dt.date(2026, 3, 1)


def fetch_app() -> str:
    """The Celery app a node runs: the slim node entry point once it exists."""
    return (
        "battletracker.fetcher"
        if importlib.util.find_spec("battletracker.fetcher")
        else "battletracker"
    )


@dataclass
class Night:
    """Timestamps (monotonic) and counts of one cycle's fetch and store."""

    published_at: float
    stored_at: float
    chunks: int
    accounts: int
    #: (seconds since publish, chunks stored, accounts stored) sampled while it ran
    samples: list[tuple[float, int, int]] = field(default_factory=list)


#: The shares of the leases the server counts as live (``nodes.services._share_keys``).
_LIVE_SHARES = (
    "SELECT s.rps FROM lease_shares s JOIN node_leases l ON l.id = s.lease_id "
    "WHERE l.revoked_at IS NULL AND l.expires_at > now()"
)


@dataclass
class LeaseWatch:
    """What the server leased out while a night ran: the most in total, the shares seen."""

    most_total: float = 0.0
    shares_seen: set[float] = field(default_factory=set)
    samples: int = 0

    def add(self, shares: list[float]) -> None:
        self.most_total = max(self.most_total, sum(shares))
        self.shares_seen.update(shares)
        self.samples += 1


@dataclass
class PipelineRig:
    settings: Settings
    api_url: str
    workdir: Path
    workers: list[Worker] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"bt-bench-{uuid.uuid4().hex[:6]}-")
    node_dirs: list[Path] = field(default_factory=list)
    _enrolment: Enrolment | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "BATTLETRACKER_SECRET_KEY": s.secret_key,
            "BATTLETRACKER_BROKER_ADMIN_URL": management_url(),
            "BATTLETRACKER_NODE_USER_PREFIX": self.prefix,
            "BATTLETRACKER_LEASE_SECONDS": str(s.lease_seconds),
            "BATTLETRACKER_BROKER_URL": s.broker_url,
            "BATTLETRACKER_DATABASE_URL": s.database_url,
            "BATTLETRACKER_CHUNK_SIZE": str(s.chunk_size),
            "BATTLETRACKER_XBOX_RANGE": str(s.xbox_range),
            "BATTLETRACKER_PS_RANGE": str(s.ps_range),
            "BATTLETRACKER_WG_API_URL": self.api_url,
        }

    def server(
        self, concurrency: int = 1, queues: str = "store,control", extra: Sequence[str] = ()
    ) -> Worker:
        return self._start(
            queues,
            lambda: Worker(
                f"server{len(self.workers)}",
                queues,
                self.env(),
                self.workdir / f"server{len(self.workers)}.log",
                concurrency=concurrency,
                extra=extra,
            ),
        )

    @property
    def enrolment(self) -> Enrolment:
        if self._enrolment is None:
            self._enrolment = Enrolment(self.env(), self.workdir)
        return self._enrolment

    def node(
        self,
        chunks_in_flight: int,
        name: str = "node",
        own_keys: str = "",
        extra_env: dict[str, str] | None = None,
        extra: Sequence[str] = (),
    ) -> Worker:
        """An enrolled node's fetch worker (lease, own broker user, signed results, no
        database), several chunks at once in threads."""
        label = f"{name}{len(self.workers)}"
        directory = self.enrolment.enrol(label)
        self.node_dirs.append(directory)
        env = {**self.enrolment.node_env(directory, self.api_url, own_keys), **(extra_env or {})}
        return self._start(
            "fetch",
            lambda: Worker(
                label,
                "fetch",
                env,
                self.workdir / f"{label}.log",
                app=fetch_app(),
                pool="threads",
                concurrency=chunks_in_flight,
                extra=extra,
            ),
        )

    def _start(self, queues: str, make: Callable[[], Worker]) -> Worker:
        queue = queues.split(",")[0]
        before = consumers(self.settings.broker_url, queue)
        worker = make()
        self.workers.append(worker)
        worker.wait_ready(self.settings.broker_url, before)
        return worker

    def start_night(self) -> float:
        """Create the cycle and publish its chunks, as ``start_cycle`` does."""
        from ..app import configure
        from ..pipeline.tasks import start_cycle

        configure(self.settings)
        published = time.monotonic()
        start_cycle(DAY.isoformat())
        return published

    def wait_stored(
        self, published: float, timeout: float, tick: Callable[[], None] | None = None
    ) -> Night:
        """Poll until every chunk of the cycle is stored; samples progress every 0.5 s."""
        engine = engine_for(self.settings)
        deadline = time.monotonic() + timeout
        samples: list[tuple[float, int, int]] = []
        while True:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT chunks_stored, chunks_total, accounts FROM cycles")
                ).one()
            now = time.monotonic()
            samples.append((now - published, row[0], row[2]))
            if tick:
                tick()
            if row[0] == row[1]:
                return Night(published, now, row[1], row[2], samples)
            if now > deadline:
                logs = "\n".join(w.log.read_text(errors="replace")[-1500:] for w in self.workers)
                raise TimeoutError(f"night not stored after {timeout:.0f} s: {row}\n{logs}")
            time.sleep(0.5)

    def wait_done(self, timeout: float) -> float:
        """Wait for the cycle's later stages (diffs, ranges, export); returns when."""
        engine = engine_for(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                status = conn.execute(text("SELECT status FROM cycles")).scalar_one()
            if status == "done":
                return time.monotonic()
            time.sleep(0.5)
        raise TimeoutError(f"cycle not done after {timeout:.0f} s")

    def wait_shares(self, nodes: int, rps: float, timeout: float = 120) -> None:
        """Lease again, node after node, until ``nodes`` live leases each hold ``rps``.

        A node's worker renews its lease only once it runs a task; before the night the
        shares are as the enrolment left them (the first node holding the whole key), so
        the benchmark takes the leases again in turn, as renewals would, until balanced.
        """
        engine = engine_for(self.settings)
        deadline = time.monotonic() + timeout
        while True:
            for directory in self.node_dirs:
                self.enrolment.lease(directory)
            with engine.connect() as conn:
                shares = [r[0] for r in conn.execute(text(_LIVE_SHARES)).all()]
            if len(shares) >= nodes and all(abs(s - rps) < 0.01 * rps for s in shares):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"leases not rebalanced to {nodes} x {rps:g}: {shares}")
            time.sleep(0.5)

    @contextmanager
    def watching_leases(self, every: float = 0.25) -> Iterator[LeaseWatch]:
        """Sample the shares the server has leased out, in the background, while inside."""
        watch = LeaseWatch()
        engine = engine_for(self.settings)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(every):
                with engine.connect() as conn:
                    watch.add([float(r[0]) for r in conn.execute(text(_LIVE_SHARES)).all()])

        thread = threading.Thread(target=sample, name="lease-watch", daemon=True)
        thread.start()
        try:
            yield watch
        finally:
            stop.set()
            thread.join()

    def usage(self, workers: list[Worker]) -> Usage:
        parts = [w.usage() for w in workers]
        return Usage(
            sum(p.cpu_seconds for p in parts),
            max(p.peak_rss_mib for p in parts),
            sum(p.processes for p in parts),
        )


@contextmanager
def pipeline_rig(
    base: Settings,
    *,
    api_url: str,
    xbox_ids: int,
    ps_ids: int,
    chunk_size: int,
    workdir: Path,
    lease_seconds: int = 30,
) -> Iterator[PipelineRig]:
    """A migrated throwaway database and vhost; stops every worker it started."""
    from ..testing.databases import temporary_database

    with ExitStack() as stack:
        db = stack.enter_context(temporary_database(base, prefix="bt_bench"))
        broker = stack.enter_context(rabbit_vhost())
        settings = db.replace(
            broker_url=broker,
            chunk_size=chunk_size,
            secret_key=new_secret_key(),
            lease_seconds=lease_seconds,
            xbox_range=IdRange(XBOX_MIN, XBOX_MIN + max(xbox_ids, 1) - 1),
            ps_range=IdRange(PS_MIN, PS_MIN + max(ps_ids, 1) - 1),
            wg_api_url=api_url,
        )
        rig = PipelineRig(settings, api_url, workdir)
        try:
            yield rig
        finally:
            for w in rig.workers:
                w.stop()
            if rig._enrolment is not None:
                rig._enrolment.stop(rig.prefix)
