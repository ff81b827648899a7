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
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

__all__ = [
    "Usage",
    "Worker",
    "broker_root",
    "consumers",
    "prefetch_total",
    "rabbit_vhost",
    "usage_of_group",
]

MANAGEMENT_ENV = "BATTLETRACKER_TEST_BROKER_ADMIN_URL"
DEFAULT_MANAGEMENT = "http://guest:guest@127.0.0.1:15672"


def management_url() -> str:
    return os.environ.get(MANAGEMENT_ENV, DEFAULT_MANAGEMENT)


def _management(path: str) -> httpx.Response:
    parts = urlsplit(management_url())
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api/"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    return httpx.get(base + path, auth=auth, timeout=10)


def _vhost(broker: str) -> str:
    return quote(urlsplit(broker).path.lstrip("/") or "/", safe="")


def _queue(broker: str, queue: str) -> dict[str, Any]:
    """The management API's view of ``queue`` in the vhost of ``broker`` ({} if it is not
    declared yet)."""
    r = _management(f"queues/{_vhost(broker)}/{quote(queue, safe='')}")
    if r.status_code == 404:
        return {}
    r.raise_for_status()
    info: dict[str, Any] = r.json()
    return info


def consumers(broker: str, queue: str) -> int:
    """Consumers of ``queue`` in the vhost of ``broker`` (0 if it is not declared yet)."""
    return int(_queue(broker, queue).get("consumers", 0))


def prefetch_total(broker: str, queue: str) -> int:
    """How many unacknowledged messages the broker lets the consumers of ``queue`` hold, read
    from the broker, not from the config: each consumer's own limit, or its channel's
    shared one (Celery sets the channel's on RabbitMQ, whose per-consumer ``basic.qos`` is
    not the spec's), each channel counted once."""
    details = _queue(broker, queue).get("consumer_details", [])
    channels = _management(f"vhosts/{_vhost(broker)}/channels")
    channels.raise_for_status()
    shared = {c["name"]: int(c.get("global_prefetch_count", 0)) for c in channels.json()}
    own = sum(int(c.get("prefetch_count", 0)) for c in details)
    names = {c["channel_details"]["name"] for c in details}
    return own + sum(shared.get(name, 0) for name in names)


BROKER_ENV = "BATTLETRACKER_TEST_BROKER_URL"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672"
_BIN = Path(sys.executable).parent
_TICK = os.sysconf("SC_CLK_TCK")


def broker_root() -> str:
    return os.environ.get(BROKER_ENV, DEFAULT_BROKER).rstrip("/")


def _ctl(*args: str, tries: int = 4) -> None:
    """``rabbitmqctl``; retried, since it fails now and then while others use the broker."""
    for attempt in range(tries):
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode == 0:
            return
        time.sleep(1 + attempt)
    raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")


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
        log_level: str = "WARNING",
    ) -> None:
        self.name = name
        self.queue = queues.split(",")[0]
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
            log_level,
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

    def wait_ready(self, broker: str, before: int, timeout: float = 90) -> None:
        """Wait until the worker consumes its first queue (``before`` consumers were there).

        Asked of RabbitMQ's management API, so the worker may log at WARNING, as a
        volunteer's does: per-task INFO lines cost a node CPU the benchmark would count.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} died:\n{self.log.read_text()[-3000:]}")
            try:
                if consumers(broker, self.queue) > before:
                    return
            except (OSError, httpx.HTTPError):  # the management API restarting: ask again
                pass
            time.sleep(0.3)
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
