"""An old node upgrades itself from the server's wheel, then fetches; a tampered wheel is refused.

Real pieces: two wheels built from this checkout (the installed version and one newer),
a node venv holding the old one, the web app serving ``/api/v1/node/release`` and the
new wheel over HTTP, RabbitMQ and the simulator. The node venv borrows the third-party
packages of the test environment through a ``.pth`` line, so no index is needed.
"""

from __future__ import annotations

import http.server
import subprocess
import sys
import sysconfig
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from battletracker.release import installed_version
from battletracker.settings import Settings
from battletracker.volunteer.ledger import read_json
from battletracker.wargaming.simulator import XBOX_MIN, Population, Simulator, serve
from battletracker.web.secret import new_secret_key
from battletracker.web.server import serve_in_thread
from tests.common.services import rabbit_vhost
from tests.integration.volunteer.nodes import (
    NodeProcess,
    declare_queues,
    publish_chunk,
    take_results,
    wait_for,
    write_lease,
)
from tests.integration.volunteer.wheels import build_wheel

pytestmark = pytest.mark.integration

OLD = installed_version()
NEW = OLD + ".post7"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheels")
    return {
        "old": build_wheel(OLD, work / "old", work),
        "new": build_wheel(NEW, work / "new", work),
    }


@pytest.fixture(scope="module")
def old_node(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the old node installed (not editable), as install-node.sh leaves it."""
    venv = tmp_path_factory.mktemp("nodevenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps",
                    str(wheels["old"])], check=True, timeout=300)  # fmt: skip
    return venv


def _version_in(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin/python"), "-I", "-c", "from battletracker.release import "
                          "installed_version; print(installed_version())"],
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture
def stack(wheels: dict[str, Path], tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(node_wheel=str(wheels["new"]), required_node_version=NEW,
                        secret_key=new_secret_key())  # fmt: skip
    sim = Simulator(Population(seed=5, xbox_ids=1000, ps_ids=10, new_per_day=0),
                    keys={"node-key": 50.0})  # fmt: skip
    web = serve_in_thread(settings)
    try:
        with rabbit_vhost() as broker, serve(sim) as api:
            declare_queues(broker)
            yield {"server": web.url, "broker": broker, "api": api.url, "dir": tmp_path / "node",
                   "lease": tmp_path / "lease.json", "log": tmp_path / "node-run.log"}  # fmt: skip
    finally:
        web.stop()


class _Tamper(http.server.BaseHTTPRequestHandler):
    """Passes everything through to the real server, but flips a byte of the wheel."""

    upstream = ""

    def do_GET(self) -> None:
        with urllib.request.urlopen(self.upstream + self.path, timeout=30) as r:
            body = bytearray(r.read())
        if self.path.startswith("/api/v1/node/wheel/"):
            body[len(body) // 2] ^= 0xFF
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(bytes(body))

    def log_message(self, *args: Any) -> None:
        pass


def _run_node(venv: Path, stack: dict[str, Any], server: str) -> NodeProcess:
    write_lease(stack["lease"], stack["broker"], [("node-key", 40)], seconds=3600, required=NEW)
    return NodeProcess(["--dir", str(stack["dir"]), "--lease-file", str(stack["lease"]),
                        "--server", server], {"BATTLETRACKER_WG_API_URL": stack["api"]},
                       stack["log"], exe=venv / "bin/battletracker")  # fmt: skip


def _fetches_a_chunk(stack: dict[str, Any]) -> None:
    worker_log = stack["dir"] / "worker.log"
    wait_for("the fetch worker", lambda: worker_log.exists() and "ready." in
             worker_log.read_text(), timeout=180, log=stack["log"])  # fmt: skip
    publish_chunk(stack["broker"], {"chunk_id": 9, "cycle_id": 1, "platform": "xbox",
                                    "first_id": XBOX_MIN, "last_id": XBOX_MIN + 299})  # fmt: skip
    results = wait_for("a result", lambda: take_results(stack["broker"]), log=worker_log)
    assert [r["chunk_id"] for r in results] == [9] and results[0]["rows"]


def test_a_tampered_wheel_is_refused_and_the_node_keeps_working(
    old_node: Path, stack: dict[str, Any]
) -> None:
    _Tamper.upstream = stack["server"]
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tamper)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    node = _run_node(old_node, stack, f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        _fetches_a_chunk(stack)  # it keeps running the version it has
        state = read_json(stack["dir"] / "runner.json")
        assert state["version"] == OLD
        assert "SHA-256" in state["upgrade_error"] and f"keeps running battletracker {OLD}" \
            in state["upgrade_error"]  # fmt: skip
        assert "not upgraded" in stack["log"].read_text()
    finally:
        assert node.terminate() == 0
        proxy.shutdown()
    assert _version_in(old_node) == OLD
    assert not list((stack["dir"] / "wheels").glob("*.whl"))  # the bad wheel was not kept


def test_an_old_node_upgrades_from_the_servers_wheel_then_fetches(
    old_node: Path, stack: dict[str, Any]
) -> None:
    assert _version_in(old_node) == OLD
    node = _run_node(old_node, stack, stack["server"])
    try:
        wait_for("the upgrade", lambda: read_json(stack["dir"] / "runner.json").get("version")
                 == NEW, timeout=300, log=stack["log"])  # fmt: skip
        _fetches_a_chunk(stack)
        # the same process, replaced in place: a service manager sees no exit
        assert read_json(stack["dir"] / "runner.json")["pid"] == node.proc.pid
    finally:
        assert node.terminate() == 0
    assert _version_in(old_node) == NEW
    assert f"upgrading to {NEW} from the server" in stack["log"].read_text()
