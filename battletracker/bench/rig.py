"""One night through the real pipeline: a database, a vhost, server and fetch workers.

The key-rate and capacity benchmarks differ only in the simulator in front and the
sizes; both start a cycle exactly as ``start_cycle`` does and watch the chunks being
stored, so what they time is the production path, from publish to the last COPY.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from ..db import engine_for
from ..settings import IdRange, Settings
from ..wargaming.simulator import PS_MIN, XBOX_MIN
from .services import Usage, Worker, rabbit_vhost

__all__ = ["Night", "PipelineRig", "fetch_app", "pipeline_rig"]

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


@dataclass
class PipelineRig:
    settings: Settings
    api_url: str
    workdir: Path
    workers: list[Worker] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            "BATTLETRACKER_BROKER_URL": s.broker_url,
            "BATTLETRACKER_DATABASE_URL": s.database_url,
            "BATTLETRACKER_CHUNK_SIZE": str(s.chunk_size),
            "BATTLETRACKER_XBOX_RANGE": str(s.xbox_range),
            "BATTLETRACKER_PS_RANGE": str(s.ps_range),
            "BATTLETRACKER_WG_API_URL": self.api_url,
        }

    def server(self, concurrency: int = 1, queues: str = "store,control") -> Worker:
        return self._start(
            Worker(
                f"server{len(self.workers)}",
                queues,
                self.env(),
                self.workdir / f"server{len(self.workers)}.log",
                concurrency=concurrency,
            )
        )

    def node(self, keys: str, chunks_in_flight: int, name: str = "node") -> Worker:
        """A fetch worker with no database settings, several chunks at once in threads."""
        env = {k: v for k, v in self.env().items() if k != "BATTLETRACKER_DATABASE_URL"}
        env["BATTLETRACKER_WG_KEYS"] = keys
        label = f"{name}{len(self.workers)}"
        return self._start(
            Worker(
                label,
                "fetch",
                env,
                self.workdir / f"{label}.log",
                app=fetch_app(),
                pool="threads",
                concurrency=chunks_in_flight,
            )
        )

    def _start(self, worker: Worker) -> Worker:
        self.workers.append(worker)
        worker.wait_ready()
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

    def usage(self, workers: list[Worker]) -> Usage:
        parts = [w.usage() for w in workers]
        return Usage(
            sum(p.cpu_seconds for p in parts),
            max(p.peak_rss_mib for p in parts),
            sum(p.processes for p in parts),
        )


@contextmanager
def pipeline_rig(
    base: Settings, *, api_url: str, xbox_ids: int, ps_ids: int, chunk_size: int, workdir: Path
) -> Iterator[PipelineRig]:
    """A migrated throwaway database and vhost; stops every worker it started."""
    from ..testing.databases import temporary_database

    with ExitStack() as stack:
        db = stack.enter_context(temporary_database(base, prefix="bt_bench"))
        broker = stack.enter_context(rabbit_vhost())
        settings = db.replace(
            broker_url=broker,
            chunk_size=chunk_size,
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
