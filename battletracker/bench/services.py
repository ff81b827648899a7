"""Real services a benchmark runs on: a RabbitMQ vhost, Celery worker processes, their cost.

The same kind of parts the integration tests use (``tests/common/services.py``), kept
here because the benchmarks ship with the package and must not import the tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Usage", "Worker", "broker_root", "rabbit_vhost", "usage_of_group"]

BROKER_ENV = "BATTLETRACKER_TEST_BROKER_URL"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672"
_BIN = Path(sys.executable).parent
_TICK = os.sysconf("SC_CLK_TCK")


def broker_root() -> str:
    return os.environ.get(BROKER_ENV, DEFAULT_BROKER).rstrip("/")


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbit_vhost(prefix: str = "bt_bench") -> Iterator[str]:
    """A fresh vhost, deleted afterwards; yields its broker URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{broker_root()}/{name}"
    finally:
        _ctl("delete_vhost", name)


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and peak resident memory of a group of processes."""

    cpu_seconds: float
    peak_rss_mib: float
    processes: int


def usage_of_group(pgid: int) -> Usage:
    """Sum CPU and the largest peak RSS (VmHWM) of every live process in ``pgid``."""
    cpu = 0.0
    peak = 0.0
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:  # field 5 of stat: the process group
                continue
            cpu += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
            count += 1
        except (OSError, ValueError):
            continue  # the process left meanwhile
    return Usage(cpu, peak, count)


class Worker:
    """A ``celery -A APP worker`` process (own session, so its pool is one group)."""

    def __init__(
        self,
        name: str,
        queues: str,
        env: Mapping[str, str],
        log: Path,
        *,
        app: str = "battletracker",
        pool: str = "prefork",
        concurrency: int = 1,
        extra: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.log = log
        args = [
            str(_BIN / "celery"),
            "-A",
            app,
            "worker",
            "-Q",
            queues,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
            *extra,
        ]
        log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait for the consumer to be up (the worker logs ``ready.``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} died:\n{self.log.read_text()[-3000:]}")
            if "ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def usage(self) -> Usage:
        return usage_of_group(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._fh.close()
