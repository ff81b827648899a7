"""The node's lease: take it, keep it renewed, fetch only with it, sign results with it.

``battletracker node lease`` takes a lease over HTTP and keeps it in ``lease.json`` beside
the identity (owner-only). A fetch worker started with ``BATTLETRACKER_NODE_DIR`` holds a
:class:`LeaseKeeper`: a daemon thread renews the lease every ``renew_in`` seconds (the
heartbeat), so keys and rates follow the server's rebalancing within one renewal, and a
lease that could not be renewed stops being used at its expiry (measured on this
machine's monotonic clock, so clock skew cannot stretch it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..settings import ApiKey
from ..signing import sign_result
from .api import ServerApi, ServerError
from .identity import Identity, load_identity, write_private

__all__ = ["LEASE_FILE", "LeaseKeeper", "keeper_for", "load_lease", "release_keeper",
           "take_lease"]

log = logging.getLogger(__name__)

LEASE_FILE = "lease.json"


def take_lease(directory: Path, api: ServerApi | None = None,
               renew: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Ask the server for a lease (or renew ``renew``); saved to ``lease.json``, returned."""
    identity = load_identity(directory)
    own = api is None
    api = api or ServerApi(identity.server, identity)
    try:
        lease = api.lease(renew)
    finally:
        if own:
            api.close()
    write_private(directory / LEASE_FILE, {**lease, "taken_at": time.time()})
    return lease


def load_lease(directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / LEASE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data


class LeaseKeeper:
    """This process's lease: keys and rates to use now, and the key results are signed with."""

    def __init__(self, directory: Path, identity: Identity, api: ServerApi) -> None:
        self.directory = directory
        self.identity = identity
        self.api = api
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._lease: dict[str, Any] | None = None
        self._expires = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._followers: list[Callable[[tuple[ApiKey, ...]], object]] = []

    # -- state -----------------------------------------------------------------------------

    def _install(self, lease: dict[str, Any], received: float) -> None:
        with self._changed:
            self._lease = lease
            self._expires = received + float(lease.get("expires_in", 0))
            self._changed.notify_all()
            keys, followers = self._current(), list(self._followers)
        for follow in followers:
            try:
                follow(keys)
            except Exception:  # a follower's bug must not stop the renewals
                log.exception("applying the renewed lease's keys failed")
        write_private(self.directory / LEASE_FILE, {**lease, "taken_at": time.time()})

    def follow(self, apply: Callable[[tuple[ApiKey, ...]], object]) -> None:
        """Call ``apply`` with the leased keys at every renewal from now on (once per
        callable): a lowered share must slow the chunks already running at once, since
        the server may hand the difference to another node right after this renewal."""
        with self._lock:
            if apply not in self._followers:
                self._followers.append(apply)

    def _renew(self) -> None:
        lease_id = self._lease.get("lease_id") if self._lease else None
        started = time.monotonic()
        try:
            lease = self.api.lease(renew=lease_id)
        except ServerError as exc:
            if exc.status == 409:  # the server no longer knows that lease: take a new one
                lease = self.api.lease()
            else:
                raise
        self._install(lease, started)

    def start(self) -> LeaseKeeper:
        """Take (or renew the saved) lease now, then keep renewing in the background."""
        saved = load_lease(self.directory)
        if saved and saved.get("node_id") == self.identity.node_id:
            self._lease = saved
        self._renew()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                wait = float(self._lease.get("renew_in", 10)) if self._lease else 5.0
            if self._stop.wait(max(0.5, wait)):
                return
            try:
                self._renew()
            except ServerError as exc:
                log.warning("lease not renewed: %s", exc)
                if exc.status == 403:  # banned, quarantined: stop using the keys now
                    with self._lock:
                        self._expires = 0.0
                else:
                    self._stop.wait(2.0)

    # -- use -------------------------------------------------------------------------------

    @property
    def renew_in(self) -> float:
        """Seconds between renewals (the server's lease period / 3)."""
        with self._lock:
            return float(self._lease.get("renew_in", 10)) if self._lease else 10.0

    @property
    def lease(self) -> dict[str, Any] | None:
        with self._lock:
            return self._lease

    def usable_keys(self, wait: float = 0.0) -> tuple[ApiKey, ...]:
        """The leased keys usable now; waits up to ``wait`` s for a share if there is none."""
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                keys = self._current()
                if keys or time.monotonic() >= deadline:
                    return keys
                self._changed.wait(max(0.05, min(1.0, deadline - time.monotonic())))

    def _current(self) -> tuple[ApiKey, ...]:
        if self._lease is None or time.monotonic() >= self._expires:
            return ()
        return tuple(ApiKey(str(k["app_id"]), float(k["rps"])) for k in self._lease["keys"])

    def sign(self, result: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
        """``result`` with node id, lease id, the chunk's dispatch token, and a signature."""
        with self._lock:
            lease = self._lease
        if lease is None:
            raise RuntimeError("no lease to sign with")
        attempt, token = chunk.get("attempt"), chunk.get("token")
        return sign_result(
            result, node_id=self.identity.node_id, lease_id=int(lease["lease_id"]),
            signing_key=str(lease["signing_key"]), token=str(token or ""),
            attempt=int(attempt) if isinstance(attempt, int) else 0,
        )  # fmt: skip

    def report_key(self, app_id: str, reason: str) -> None:
        """Tell the server a key is unusable (best effort: never fails the caller)."""
        try:
            self.api.key_report(app_id, reason)
        except ServerError as exc:
            log.error("could not report key %s… unusable: %s", app_id[:4], exc)


_KEEPER: LeaseKeeper | None = None
_KEEPER_LOCK = threading.Lock()


def keeper_for(node_dir: str) -> LeaseKeeper | None:
    """This process's keeper when it runs as a node (``node_dir`` set), started once."""
    global _KEEPER
    if not node_dir:
        return None
    with _KEEPER_LOCK:
        if _KEEPER is None:
            directory = Path(node_dir)
            identity = load_identity(directory)
            _KEEPER = LeaseKeeper(directory, identity,
                                  ServerApi(identity.server, identity)).start()  # fmt: skip
        return _KEEPER


def release_keeper() -> None:
    """Stop this process's keeper, when a process stops being a node but lives on.

    The demo does: its worker and enrolment server are gone once the nights are crawled,
    while the dashboard keeps the process alive; a keeper left running would try to
    renew a lease with a server that no longer exists.
    """
    global _KEEPER
    with _KEEPER_LOCK:
        if _KEEPER is not None:
            _KEEPER.stop()
            _KEEPER = None
