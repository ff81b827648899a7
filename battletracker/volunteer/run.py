"""``battletracker node run``: stay current, hold a lease, run the fetch worker under it.

One supervising process, small and mostly asleep:

1. asks the server which version it requires; an older node upgrades itself from the
   server's wheel and restarts (:mod:`.upgrade`); a refused wheel leaves it running;
2. takes a lease (broker credentials of its own, keys and rates, an expiry) and starts
   ``celery … worker -Q fetch`` with it, at low OS priority, in its own process group;
3. renews the lease well before it expires, checks the required version each time, and
   restarts the worker when the lease's broker or keys change;
4. on SIGTERM / Ctrl-C stops the worker with a cold shutdown: the running chunk gets
   :data:`~.worker.SOFT_SHUTDOWN_SECONDS`, then goes back to the broker unacknowledged,
   for another node to fetch.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from ..release import VersionError, installed_version, older_than, parse_version
from ..settings import ApiKey, SettingsError, parse_keys
from .ledger import update_runner
from .worker_app import LEDGER_DIR_ENV, SOFT_SHUTDOWN_SECONDS

__all__ = [
    "Lease",
    "LeaseError",
    "LeaseSource",
    "NodeRunner",
    "WorkerProcess",
    "worker_command",
]

log = logging.getLogger(__name__)

WORKER_APP = "battletracker.volunteer.worker_app"
#: Nice value of the fetch worker on POSIX (0 normal, 19 lowest).
DEFAULT_NICE = 10
#: Chunks a POSIX node works on at once (threads of one process, one budget per key).
CHUNKS_IN_FLIGHT = 3


class LeaseError(Exception):
    """No lease now (server unreachable, node not approved, banned, bad answer)."""


@dataclass(frozen=True)
class Lease:
    """What the server lends a node for a while: broker access, keys and rates, an expiry."""

    node_id: str
    broker_url: str
    keys: tuple[ApiKey, ...]
    expires_at: dt.datetime
    required_version: str

    @classmethod
    def from_json(cls, raw: Any) -> Lease:
        """Parse the lease (issue 12's shape); anything malformed is a :class:`LeaseError`."""
        if not isinstance(raw, dict):
            raise LeaseError("the lease is not a JSON object")
        try:
            broker = str(raw["broker_url"])
            if not broker.startswith(("amqp://", "amqps://")):
                raise LeaseError("the lease's broker_url is not an amqp(s):// URL")
            keys = parse_keys(",".join(f"{k['app_id']}:{float(k['rps'])}" for k in raw["keys"]))
            expires = dt.datetime.fromisoformat(str(raw["expires_at"]).replace("Z", "+00:00"))
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=dt.UTC)
            required = str(raw["required_version"])
            parse_version(required)
            return cls(str(raw["node_id"]), broker, keys, expires, required)
        except (KeyError, TypeError, ValueError, SettingsError, VersionError) as exc:
            raise LeaseError(f"the lease is malformed: {exc}") from None

    def same_work(self, other: Lease, *, keys: bool = True) -> bool:
        """Whether a worker started under ``other`` may go on under this lease (``keys``:
        whether the worker got its keys at start; a worker that renews the lease itself
        follows key changes without a restart)."""
        if self.broker_url != other.broker_url:
            return False
        return not keys or self.keys == other.keys

    def worker_env(self, *, keys: bool = True) -> dict[str, str]:
        env = {"BATTLETRACKER_BROKER_URL": self.broker_url}
        if keys:
            env["BATTLETRACKER_WG_KEYS"] = ",".join(f"{k.app_id}:{k.rps:g}" for k in self.keys)
        return env

    def summary(self) -> dict[str, Any]:
        """What ``node status`` shows: no secret, only a hint of each key."""
        return {
            "node_id": self.node_id,
            "keys": [{"key": k.app_id[:4] + "…", "rps": k.rps} for k in self.keys],
            "expires_at": self.expires_at.isoformat(timespec="seconds"),
            "required_version": self.required_version,
        }


class LeaseSource(Protocol):
    """Takes (and by calling again, renews) this node's lease from the server."""

    def take(self) -> Lease: ...


def worker_command(node_id: str, *, windows: bool = os.name == "nt") -> list[str]:
    """The fetch worker: one process. On POSIX it runs a few chunks at once in threads
    (one lasting request stream per key keeps the key busy across chunk boundaries,
    ``pipeline/keys.py``); on Windows, where prefork does not run, the solo pool."""
    pool = ["-P", "solo"] if windows else ["-P", "threads", "-c", str(CHUNKS_IN_FLIGHT)]
    return [
        sys.executable, "-I", "-m", "celery", "-A", WORKER_APP, "worker", "-Q", "fetch",
        *pool, "-n", f"node-{node_id}@%h", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "INFO",
    ]  # fmt: skip


class WorkerProcess:
    """The fetch worker child: started at low priority, stopped so that its chunk goes back."""

    def __init__(self, cmd: list[str], env: Mapping[str, str], log_file: Path,
                 nice: int = DEFAULT_NICE) -> None:  # fmt: skip
        self._log: IO[bytes] = log_file.open("ab")
        kwargs: dict[str, Any] = {}
        if os.name == "nt":  # pragma: no cover - Windows
            flags = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)
            kwargs["creationflags"] = flags | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        else:
            # own session: a Ctrl-C in the terminal reaches only node run, which then
            # stops the worker the way that hands the chunk back
            kwargs["start_new_session"] = True
            kwargs["preexec_fn"] = lambda: os.nice(nice) if nice > 0 else None
        self.proc = subprocess.Popen(cmd, env=dict(env), stdout=self._log,
                                     stderr=subprocess.STDOUT, **kwargs)  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = SOFT_SHUTDOWN_SECONDS) -> int | None:
        """Cold shutdown: the chunk in hand gets ``grace`` seconds, then is requeued.

        Celery's own cold shutdown cancels the running chunk after its soft-shutdown
        time; should it be slower (a busy machine), the worker's process group is killed:
        its chunk is unacknowledged, so the broker requeues it when the connection drops.
        """
        if self.alive():
            if os.name == "nt":  # pragma: no cover - Windows: the broker requeues on disconnect
                self.proc.terminate()
            else:
                self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(grace + 3)
            except subprocess.TimeoutExpired:
                log.warning("fetch worker %s still running: killed, its chunk goes back", self.pid)
                if os.name != "nt":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


class NodeRunner:
    """The supervisor loop of ``node run`` (see the module docstring)."""

    def __init__(
        self,
        *,
        directory: Path,
        leases: LeaseSource,
        ensure_version: Callable[[Callable[[], None]], None],
        spawn: Callable[[Lease], WorkerProcess] | None = None,
        renew_every: float | None = None,
        nice: int = DEFAULT_NICE,
        worker_renews: bool = False,
    ) -> None:
        """
        Arguments:
            directory: the node directory (ledger, worker log).
            leases: takes and renews the lease.
            ensure_version: checks the server's required version and upgrades (it may
                replace this process); called with a function that stops the worker first.
            spawn: starts a worker for a lease (default: :func:`worker_command`).
            renew_every: seconds between renewals (default: a third of the lease left).
            worker_renews: the worker holds the lease itself (a registered node: it reads
                the node directory and renews there); else it gets the keys at start.
        """
        self.directory = directory
        self.leases = leases
        self.ensure_version = ensure_version
        self.spawn = spawn or self._spawn
        self.renew_every = renew_every
        self.nice = nice
        self.worker_renews = worker_renews
        self.stopping = threading.Event()
        self.worker: WorkerProcess | None = None
        self.lease: Lease | None = None
        self._spawned = 0.0

    def _spawn(self, lease: Lease) -> WorkerProcess:
        env = {**os.environ, **lease.worker_env(keys=not self.worker_renews),
               LEDGER_DIR_ENV: str(self.directory), "REMAP_SIGTERM": "SIGQUIT"}  # fmt: skip
        env.pop("BATTLETRACKER_NODE_DIR", None)
        if self.worker_renews:
            env["BATTLETRACKER_NODE_DIR"] = str(self.directory)
        return WorkerProcess(worker_command(lease.node_id), env,
                             self.directory / "worker.log", nice=self.nice)  # fmt: skip

    def request_stop(self, *_: Any) -> None:
        self.stopping.set()

    def _stop_worker(self) -> None:
        if self.worker is not None:
            log.info("stopping the fetch worker (its chunk goes back to the queue)")
            self.worker.stop()
            self.worker = None

    def _note(self, **changes: Any) -> None:
        try:
            update_runner(self.directory, **changes)
        except OSError as exc:
            log.warning("cannot write the node's state file: %s", exc)

    def _error(self, text: str) -> None:
        log.warning("%s", text)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._note(last_error={"at": now, "text": text[:500]})

    def _pause(self, seconds: float) -> None:
        """Sleep up to ``seconds``; wake early when asked to stop or the worker exits."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if self.worker is not None and not self.worker.alive():
                return
            self.stopping.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    def _renew_after(self, lease: Lease) -> float:
        if self.renew_every is not None:
            return self.renew_every
        left = (lease.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
        return min(300.0, max(2.0, left / 3))

    def run(self) -> int:
        """Run until SIGTERM / Ctrl-C; returns the exit code."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._note(pid=os.getpid(), version=installed_version(), state="starting",
                   started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))  # fmt: skip
        failures = 0
        try:
            self.ensure_version(self._stop_worker)
            while not self.stopping.is_set():
                if self.worker is not None and not self.worker.alive():
                    code = self.worker.stop()
                    self.worker = None
                    failures += 1
                    self._error(f"the fetch worker stopped by itself (exit code {code}); "
                                f"see {self.directory / 'worker.log'}")  # fmt: skip
                    self.ensure_version(self._stop_worker)
                    self._pause(min(60.0, 2.0**failures))
                    continue
                try:
                    lease = self.leases.take()
                except LeaseError as exc:
                    failures += 1
                    self._error(f"no lease: {exc}")
                    if self.lease is not None and self.lease.expires_at <= dt.datetime.now(dt.UTC):
                        self._stop_worker()  # its broker access ends with the lease
                        self.lease = None
                    self._pause(min(60.0, 2.0**failures))
                    continue
                if older_than(installed_version(), lease.required_version):
                    self.ensure_version(self._stop_worker)
                old = self.lease
                if self.worker is not None and old is not None \
                        and not lease.same_work(old, keys=not self.worker_renews):  # fmt: skip
                    log.info("the lease changed (broker or keys): restarting the fetch worker")
                    self._stop_worker()
                self.lease = lease
                if self.worker is None and not self.stopping.is_set():
                    self.worker = self.spawn(lease)
                    self._spawned = time.monotonic()
                    log.info(
                        "fetch worker started (pid %s, %s)",
                        self.worker.pid,
                        ", ".join(f"{k.app_id[:4]}… at {k.rps:g} rps" for k in lease.keys),
                    )
                self._note(state="running", lease=lease.summary(),
                           worker_pid=self.worker.pid if self.worker else None)  # fmt: skip
                if self.worker is not None and self.worker.alive() \
                        and time.monotonic() - self._spawned > 60:  # fmt: skip
                    failures = 0  # a worker that keeps running resets the back-off
                self._pause(self._renew_after(lease))
        finally:
            self._stop_worker()
            self._note(state="stopped", worker_pid=None)
        return 0
