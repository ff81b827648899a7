"""Helpers for node tests: a lease file, a ``node run`` process, the queues seen from outside."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kombu

from battletracker.release import installed_version
from tests.common.services import BIN

QUEUES = ("fetch", "store", "control")


def write_lease(path: Path, broker: str, keys: list[tuple[str, float]], *,
                seconds: float = 9.0, required: str | None = None) -> None:  # fmt: skip
    """A lease in issue 12's shape, expiring soon so that ``node run`` renews it often."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    path.write_text(json.dumps({
        "node_id": "7", "broker_url": broker,
        "keys": [{"app_id": a, "rps": r} for a, r in keys],
        "expires_at": expires.isoformat(), "required_version": required or installed_version(),
    }))  # fmt: skip


def declare_queues(broker: str) -> None:
    """The topology the server's worker declares (nodes may declare nothing)."""
    from battletracker.app import celery_options
    from battletracker.settings import Settings

    with kombu.Connection(broker) as conn:
        for queue in celery_options(Settings(broker_url=broker))["task_queues"]:
            queue(conn.default_channel).declare()


def publish_chunk(broker: str, chunk: dict[str, Any]) -> None:
    """What the coordinator sends: ``fetch_range(chunk)`` linked to ``store_results``."""
    from celery import Celery, signature

    app = Celery("publisher", broker=broker)
    app.conf.task_serializer = "json"
    app.conf.task_routes = {"battletracker.fetch_range": {"queue": "fetch",
                                                          "exchange": "battletracker",
                                                          "routing_key": "fetch"}}  # fmt: skip
    app.send_task("battletracker.fetch_range", (chunk,),
                  link=signature("battletracker.store_results"))  # fmt: skip
    app.close()


def queue_count(broker: str, name: str) -> int:
    with kombu.Connection(broker) as conn:
        _, count, _ = conn.default_channel.queue_declare(name, passive=True)
        return int(count)


def take_results(broker: str) -> list[Any]:
    """Drain the ``store`` queue and return the fetch results in it (each body is
    ``[args, kwargs, embed]``); the node's notices about a chunk (no rows) are dropped."""
    out = []
    with kombu.Connection(broker) as conn:
        ch = conn.default_channel
        while (msg := ch.basic_get("store", no_ack=True)) is not None:
            message = json.loads(msg.body)[0][0]
            if "rows" in message:
                out.append(message)
    return out


def wait_for(
    what: str, cond: Callable[[], Any], timeout: float = 90, log: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.3)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise TimeoutError(f"waited {timeout}s for {what}\n{tail}")


class NodeProcess:
    """``battletracker node run`` as a volunteer's service would start it."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path,
                 exe: Path = BIN / "battletracker") -> None:  # fmt: skip
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen([str(exe), "node", "run", *args], env={**os.environ, **env},
                                     stdout=self._fh, stderr=subprocess.STDOUT,
                                     cwd=log.parent)  # fmt: skip

    def terminate(self, timeout: float = 60, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._fh.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


def nice_of(pid: int) -> int:
    """The nice value of ``pid`` (field 19 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
