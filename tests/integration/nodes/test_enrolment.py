"""Enrolment, approval, bans, the key pool and lease shares, through the commands users run.

The operator's commands (``nodes``, ``keys``) and the node's (``node register``,
``node lease``) run as processes against the web app served on a real database; node
broker users are made in a real RabbitMQ vhost through its management API.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import kombu
import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.nodes.services import SHARE_HOLD
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from tests.common.nodes import NodeServer, node_server
from tests.common.services import BIN, rabbit_vhost, run_cli

pytestmark = pytest.mark.integration

#: Short enough to see a silent node's lease expire; long enough that a loaded machine
#: (commands as subprocesses, tests in parallel) never lets a live lease lapse mid-test.
LEASE = 15
HOLD = SHARE_HOLD.total_seconds() + 0.2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NodeServer]:
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, \
            node_server(db, broker, tmp_path, lease_seconds=LEASE) as srv:  # fmt: skip
        yield srv


def _query(srv: NodeServer, sql: str) -> list[tuple[object, ...]]:
    from battletracker.settings import load_settings

    with engine_for(load_settings(environ=srv.env)).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


def test_invite_register_lease_and_list(server: NodeServer) -> None:
    run_cli("keys", "add", "pool-key-1", "--rps", "20", env=server.env)
    directory = server.enrol("alice")
    identity = directory / "identity.json"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600, "identity readable by its owner only"
    secret = httpx.get  # keep a reference: the secret must not be stored by the server
    lease = server.lease(directory)
    assert set(lease) >= {"node_id", "broker_url", "keys", "expires_at", "required_version"}
    assert lease["keys"] == [{"app_id": "pool-key-1", "rps": 20.0}]
    assert lease["broker_url"].startswith("amqp://bt-test-")
    assert "signing_key" not in lease, "the signing key stays in the node's lease file"
    # the server keeps only a hash of the node's secret
    node_secret = __import__("json").loads(identity.read_text())["secret"]
    dump = " ".join(str(r) for r in _query(server, "SELECT * FROM nodes"))
    assert node_secret not in dump and len(node_secret) >= 40
    del secret
    nodes = server.nodes()
    assert [(n["name"], n["state"], n["rps"]) for n in nodes] == [("alice", "approved", 20.0)]
    assert nodes[0]["version"] and nodes[0]["last_seen"]
    # the lease's broker URL is a user of the node's own: it can consume nothing but fetch
    with kombu.Connection(lease["broker_url"], connect_timeout=5) as conn:
        conn.ensure_connection(max_retries=2)


def test_without_invite_a_node_waits_for_approval(server: NodeServer, tmp_path: Path) -> None:
    directory = server.enrol("bob", invite=False)
    done = _run_failing("node", "lease", "--dir", str(directory), "--json")
    assert "403" in done and "pending" in done
    node_id = server.nodes()[0]["id"]
    run_cli("nodes", "approve", str(node_id), env=server.env)
    assert server.lease(directory)["node_id"] == node_id


def test_an_invite_works_once(server: NodeServer, tmp_path: Path) -> None:
    code = run_cli("nodes", "invite", env=server.env).strip()
    run_cli("node", "register", "--server", server.url, "--invite", code,
            "--dir", str(tmp_path / "a"), env={})  # fmt: skip
    out = _run_failing("node", "register", "--server", server.url, "--invite", code,
                       "--dir", str(tmp_path / "b"))  # fmt: skip
    assert "invite code unknown, used or expired" in out
    out = _run_failing("node", "lease", "--dir", str(tmp_path / "nowhere"))
    assert "node register" in out


def test_shares_of_a_key_never_exceed_its_budget(server: NodeServer) -> None:
    run_cli("keys", "add", "shared", "--rps", "12", env=server.env)
    a, b, c = (server.enrol(n) for n in ("a", "b", "c"))
    la = _renew(server, a, new=True)
    assert la["keys"] == [{"app_id": "shared", "rps": 12.0}]
    lb = _renew(server, b, new=True)
    assert lb["keys"] == [], "a newcomer gets only what is unallocated"
    la = _renew(server, a)
    assert la["keys"] == [{"app_id": "shared", "rps": 6.0}]
    # the 6 rps a gave up stay counted while its last second's requests may still count
    assert _renew(server, b)["keys"] == [], "a lowered share's difference taken at once"
    time.sleep(HOLD)
    lb = _renew(server, b)
    assert lb["keys"] == [{"app_id": "shared", "rps": 6.0}]
    _renew(server, c, new=True)
    for d in (a, b, c, a, b, c):
        _renew(server, d)
        assert _budget_spoken_for(server) <= 12.0
    time.sleep(HOLD)
    _renew(server, c)
    assert _shares(server) == [4.0, 4.0, 4.0]
    assert sorted(n["rps"] for n in server.nodes()) == [4.0, 4.0, 4.0]
    # c goes silent: its lease expired a moment ago, its share still held; then free
    _execute(server, "UPDATE node_leases SET expires_at = now() - interval '1 second' "
                     f"WHERE id = {int(_lease_id(c))}")  # fmt: skip
    assert _renew(server, a)["keys"] == [{"app_id": "shared", "rps": 4.0}]
    _execute(server, "UPDATE node_leases SET expires_at = now() - interval '3 seconds' "
                     f"WHERE id = {int(_lease_id(c))}")  # fmt: skip
    for d in (a, b):
        _renew(server, d)
    assert _shares(server) == [6.0, 6.0]
    run_cli("keys", "disable", "shared", env=server.env)
    assert _renew(server, a)["keys"] == []
    keys = __import__("json").loads(run_cli("keys", "list", "--json", env=server.env))
    assert keys[0]["state"] == "disabled"


def test_a_node_is_told_of_its_lease_only_once_it_is_committed(server: NodeServer) -> None:
    """The answer waits for the commit, so a node never acts on a lease or share the
    database does not hold (or, should the commit fail, never will). The server's commits
    are slowed here; the lease must be there the moment its answer arrives."""
    run_cli("keys", "add", "k", "--rps", "10", env=server.env)
    node = server.enrol("a")
    test_thread = threading.get_ident()

    def slow_commit(session: Session) -> None:
        if threading.get_ident() != test_thread:  # the web app's threads only
            time.sleep(0.5)

    event.listen(Session, "before_commit", slow_commit)
    try:
        lease = _renew(server, node, new=True)
        shares = _query(server, "SELECT rps FROM lease_shares WHERE lease_id = "
                                f"{int(str(lease['lease_id']))}")  # fmt: skip
    finally:
        event.remove(Session, "before_commit", slow_commit)
    assert lease["keys"] == [{"app_id": "k", "rps": 10.0}]
    assert shares == [(10.0,)]


def _renew(server: NodeServer, directory: Path, new: bool = False) -> dict[str, object]:
    """What a node's lease keeper does every ``renew_in`` seconds (in-process: fast)."""
    from battletracker.volunteer.lease import load_lease, take_lease

    saved = load_lease(directory)
    return take_lease(directory, renew=None if new or saved is None else int(saved["lease_id"]))


def _lease_id(directory: Path) -> int:
    from battletracker.volunteer.lease import load_lease

    saved = load_lease(directory)
    assert saved is not None
    return int(saved["lease_id"])


def _execute(srv: NodeServer, sql: str) -> None:
    from battletracker.settings import load_settings

    with engine_for(load_settings(environ=srv.env)).begin() as conn:
        conn.execute(text(sql))


def _budget_spoken_for(server: NodeServer) -> float:
    """Live shares plus what is held (given up in the last moments, or by leases that just
    expired): what the server will not hand out."""
    hold = SHARE_HOLD.total_seconds()
    return sum(float(str(r[0])) for r in _query(server, f"""
        SELECT s.rps + CASE WHEN s.held_until > now() THEN s.held_rps ELSE 0 END
        FROM lease_shares s JOIN node_leases l ON l.id = s.lease_id
        WHERE l.revoked_at IS NULL AND l.expires_at > now() - interval '{hold} seconds'"""))


def _shares(server: NodeServer) -> list[float]:
    """The live shares of all nodes, sorted."""
    return sorted(float(str(r[0])) for r in _query(server, """
        SELECT s.rps FROM lease_shares s JOIN node_leases l ON l.id = s.lease_id
        WHERE l.revoked_at IS NULL AND l.expires_at > now()"""))


def test_ban_ends_broker_access_at_once(server: NodeServer) -> None:
    directory = server.enrol("mallory")
    lease = server.lease(directory)
    conn = kombu.Connection(lease["broker_url"], connect_timeout=5)
    conn.ensure_connection(max_retries=2)
    run_cli("nodes", "ban", str(lease["node_id"]), env=server.env)
    deadline = time.monotonic() + 10
    closed = False
    while time.monotonic() < deadline and not closed:
        try:
            conn.drain_events(timeout=0.5)
        except TimeoutError:
            continue
        except Exception:
            closed = True
    assert closed, "the banned node's connection stays open"
    with pytest.raises(Exception):  # noqa: B017 - its user no longer exists
        kombu.Connection(lease["broker_url"], connect_timeout=5).ensure_connection(max_retries=1)
    out = _run_failing("node", "lease", "--dir", str(directory))
    assert "banned" in out
    assert server.nodes()[0]["state"] == "banned"


def _run_failing(*args: str) -> str:
    import subprocess

    done = subprocess.run([str(BIN / "battletracker"), *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr
