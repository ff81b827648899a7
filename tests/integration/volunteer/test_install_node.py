"""docs/volunteer.md followed step by step in a throwaway HOME, against a running server.

The server: the web app (node API, release and wheel), a PostgreSQL database, a RabbitMQ
vhost with node users made through the management API, the server's Celery worker, and
the simulator as the Wargaming API. The volunteer: the install command of the docs
(``scripts/install-node.sh`` with the server's URL and an invite code), which makes a
venv in the new HOME from the server's wheel, registers, writes the systemd user unit
and runs the checks; then what the unit's ``ExecStart`` runs (this machine has no
systemd user session), ``node status``, ``scripts/check-node``, and the uninstall.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from battletracker.release import installed_version
from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.wargaming.simulator import PS_MIN, XBOX_MIN, Population, Simulator, serve
from battletracker.web.secret import new_secret_key
from battletracker.web.server import serve_in_thread
from tests.common.nodes import node_server_env, remove_broker_users, settings_from
from tests.common.services import Worker, rabbit_vhost, run_cli
from tests.integration.volunteer.nodes import NodeProcess, wait_for
from tests.integration.volunteer.wheels import ROOT, build_wheel

pytestmark = pytest.mark.integration

DOC = (ROOT / "docs/volunteer.md").read_text()
IDS = 600


def _doc_command(pattern: str) -> str:
    """The first command line of the docs matching ``pattern`` (so docs and test agree)."""
    for line in DOC.splitlines():
        if re.search(pattern, line):
            return line.split("   #")[0].strip()
    raise AssertionError(f"docs/volunteer.md shows no command matching {pattern!r}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    wheel = build_wheel(installed_version(), tmp_path / "dist", tmp_path)
    sim = Simulator(Population(seed=9, xbox_ids=IDS, ps_ids=IDS, new_per_day=0),
                    keys={"pool-key": 60.0})  # fmt: skip
    prefix = f"bt-test-{os.urandom(3).hex()}-"
    with temporary_database(Settings()) as db, rabbit_vhost() as broker, serve(sim) as api:
        env = {
            **node_server_env(db, broker, prefix),
            "BATTLETRACKER_SECRET_KEY": new_secret_key(),
            "BATTLETRACKER_NODE_WHEEL": str(wheel),
            "BATTLETRACKER_CHUNK_SIZE": "300",
            "BATTLETRACKER_XBOX_RANGE": f"{XBOX_MIN}-{XBOX_MIN + IDS - 1}",
            "BATTLETRACKER_PS_RANGE": f"{PS_MIN}-{PS_MIN + IDS - 1}",
        }
        web = serve_in_thread(settings_from(env))
        worker = Worker("server", "store,control", env, tmp_path / "server.log")
        try:
            worker.wait_ready()
            run_cli("keys", "add", "pool-key", "--rps", "40", env=env)
            yield {"env": env, "url": web.url, "api": api.url, "sim": sim}
        finally:
            worker.stop()
            web.stop()
            remove_broker_users(prefix)


def test_docs_install_in_a_fresh_home_ends_with_a_node_that_fetches(
    server: dict[str, Any], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = run_cli("nodes", "invite", "--name", "volunteer", env=server["env"]).strip()
    volunteer = {
        "HOME": str(home), "PATH": os.environ["PATH"],
        # the real pip cache: the test need not download the dependencies each time
        "PIP_CACHE_DIR": str(Path.home() / ".cache/pip"),
        # the simulator stands in for the Wargaming API
        "BATTLETRACKER_WG_API_URL": server["api"],
    }  # fmt: skip
    for var in ("PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE"):
        if var in os.environ:
            volunteer[var] = os.environ[var]

    # 1. the install command of the docs, with this server's URL and the invite code
    install = _doc_command(r"^bash install-node\.sh --server")
    install = install.replace("install-node.sh", str(ROOT / "scripts/install-node.sh"), 1)
    install = install.replace("https://tracker.example", server["url"]).replace(
        "YOUR-CODE", code)  # fmt: skip
    done = subprocess.run(shlex.split(install), env=volunteer, capture_output=True, text=True,
                          timeout=900, cwd=home)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "(SHA-256 checked)" in out and "registered as node" in out
    assert "pinning versions with the server's constraints file" in out
    assert "all checks passed" in out, out
    venv = home / ".battletracker/venv"
    assert (venv / "bin/battletracker").is_file()
    unit = home / ".config/systemd/user/battletracker-node.service"
    assert unit.is_file(), out
    nodes = json.loads(run_cli("nodes", "list", "--json", env=server["env"]))
    assert [n["name"] for n in nodes] == ["volunteer"]

    # 2. what the service runs (no systemd user session here): the unit's ExecStart
    exec_start = next(line for line in unit.read_text().splitlines()
                      if line.startswith("ExecStart="))  # fmt: skip
    argv = [a.replace("%%", "%") for a in shlex.split(exec_start.removeprefix("ExecStart="))]
    assert argv[0] == str(venv / "bin/battletracker")
    node = NodeProcess(argv[3:], volunteer, tmp_path / "node-run.log", exe=Path(argv[0]))
    try:
        node_dir = Path(argv[argv.index("--dir") + 1])
        wait_for("the fetch worker", lambda: (node_dir / "worker.log").exists() and "ready." in
                 (node_dir / "worker.log").read_text(), timeout=120,
                 log=tmp_path / "node-run.log")  # fmt: skip

        # 3. the operator starts a night: the node fetches, the server stores
        run_cli("cycle", "start", env=server["env"])

        def stored() -> list[dict[str, Any]]:
            listed = json.loads(run_cli("nodes", "list", "--json", env=server["env"]))
            return [n for n in listed if n["chunks_stored"] > 0]

        fetched = wait_for("chunks stored from the node", stored, timeout=180,
                           log=node_dir / "worker.log")  # fmt: skip
        assert fetched[0]["name"] == "volunteer"

        # 4. "See it work": node status, then the check script
        see = _doc_command(r"battletracker node status$").replace("~", str(home))
        status = subprocess.run(shlex.split(see), env=volunteer, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert re.search(r"in total    [1-9]\d* chunks", status.stdout), status.stdout
        assert "server view state approved" in status.stdout
        check = subprocess.run([str(ROOT / "scripts/check-node")], env=volunteer,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert check.returncode == 0 and "all checks passed" in check.stdout, check.stdout
    finally:
        assert node.terminate() == 0

    # 5. uninstall: the service file and the venv go, the identity stays without --purge
    done = subprocess.run([str(ROOT / "scripts/uninstall-node.sh")], env=volunteer,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert not unit.exists() and not (home / ".battletracker").exists()
    assert "kept" in done.stdout
