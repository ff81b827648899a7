"""``node check``: each problem is found and said in plain words with what to do.

Real sockets on loopback (a closed port, a TLS port whose certificate the node cannot
trust, a plain TCP listener) and the API simulator over HTTP; nothing is mocked.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from battletracker.settings import ApiKey
from battletracker.volunteer.check import (
    check_broker,
    check_clock,
    check_key,
    check_server,
    check_version,
    check_wargaming,
    format_checks,
)
from battletracker.volunteer.upgrade import Release
from battletracker.wargaming.simulator import Population, Simulator, serve


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port that accepts and closes (something answers, it is not a broker)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(2)
    srv.close()


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    """A TLS listener with a self-signed certificate (as an interception proxy has)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            try:
                ctx.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(2)
    srv.close()


def test_unreachable_server_and_broker_say_what_to_do(listener: int) -> None:
    port = _closed_port()
    with httpx.Client(timeout=5) as client:
        check, release, skew = check_server(client, f"http://127.0.0.1:{port}")
    assert not check.ok and release is None and skew is None
    assert "did not answer" in check.detail and "check the address" in check.todo
    broker = check_broker(f"amqp://u:p@127.0.0.1:{port}//", timeout=2)
    assert not broker.ok and f"127.0.0.1:{port}" in broker.detail
    assert f"outgoing TCP port {port} must be open" in broker.todo
    # the port answers, but it is no broker that lets this node in
    refused = check_broker(f"amqp://u:p@127.0.0.1:{listener}//", timeout=2)
    assert not refused.ok and "refused this node's login" in refused.detail


def test_tls_broker_whose_certificate_cannot_be_trusted(tls_port: int) -> None:
    check = check_broker(f"amqps://u:p@localhost:{tls_port}//", timeout=3, login=False)
    assert not check.ok and "(TLS)" in check.detail and "TLS failed" in check.detail
    assert "clock may be wrong" in check.todo


def test_real_broker_port_and_login() -> None:
    ok = check_broker("amqp://guest:guest@127.0.0.1:5672//")
    assert ok.ok and "lets this node in" in ok.detail
    bad = check_broker("amqp://guest:wrong@127.0.0.1:5672//")
    assert not bad.ok and "refused this node's login" in bad.detail


def test_keys_answers_from_the_api() -> None:
    sim = Simulator(Population(seed=1, xbox_ids=10, ps_ids=10), keys={"good": 10.0},
                    blocked_keys={"blocked"})  # fmt: skip
    with serve(sim) as api, httpx.Client(timeout=5) as client:
        assert check_wargaming(client, api.url).ok
        assert check_key(client, api.url, ApiKey("good", 10)).ok
        blocked = check_key(client, api.url, ApiKey("blocked", 10))
        unknown = check_key(client, api.url, ApiKey("nonesuch", 10))
    assert not blocked.ok and "APPLICATION_IS_BLOCKED" in blocked.detail
    assert "blocked by Wargaming: tell the operator" in blocked.todo
    assert not unknown.ok and "INVALID_APPLICATION_ID" in unknown.detail
    with httpx.Client(timeout=2) as client:
        down = check_wargaming(client, f"http://127.0.0.1:{_closed_port()}/wotx/")
    assert not down.ok and "firewall" in down.todo


def test_version_and_clock() -> None:
    release = Release(version="9.0", required_version="9.0", wheel=None)
    old = check_version(release, current="1.0")
    assert not old.ok and "needs 9.0" in old.detail and "updates itself" in old.todo
    assert check_version(release, current="9.0.1").ok
    assert check_clock(3.0).ok
    late = check_clock(-400.0)
    assert not late.ok and "400 s behind" in late.detail and "NTP" in late.todo
    text = format_checks([old, late, check_clock(1.0)])
    assert text.splitlines()[0].startswith("FAIL  version")
    assert "what to do:" in text and text.endswith("2 problem(s) found")
