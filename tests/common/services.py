"""Real services for integration tests: a RabbitMQ vhost, Celery worker processes.

Nothing here skips: a missing RabbitMQ or ``rabbitmqctl`` fails the test, so CI cannot
turn green without the real broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import kombu

BROKER_ENV = "BATTLETRACKER_TEST_BROKER_URL"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672"
BIN = Path(sys.executable).parent


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    """A fresh vhost (so parallel runs never share queues); yields its broker URL."""
    name = f"bt_test_{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        url = f"{os.environ.get(BROKER_ENV, DEFAULT_BROKER).rstrip('/')}/{name}"
        with kombu.Connection(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=3)
        yield url
    finally:
        _ctl("delete_vhost", name)


class Worker:
    """A ``celery -A battletracker worker`` process with its own environment."""

    def __init__(self, name: str, queues: str, env: Mapping[str, str], log: Path,
                 concurrency: int = 1) -> None:  # fmt: skip
        self.name = name
        self.log = log
        # a volunteer runs the slim app that loads only fetch_range; the server every task
        app = "battletracker.fetcher" if queues == "fetch" else "battletracker"
        args = [
            str(BIN / "celery"), "-A", app, "worker", "-Q", queues,
            "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip",
            "--without-mingle", "-l", "INFO",
        ]  # fmt: skip
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self._fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} died:\n{self.log.read_text()[-3000:]}")
            if "ready." in self.log.read_text():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the pool children die with the parent."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._fh.close()


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 300) -> str:
    """Run the ``battletracker`` command; fail with its output if it fails."""
    done = subprocess.run(
        [str(BIN / "battletracker"), *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"battletracker {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout
