"""``/api/v1/node/release``: the version nodes need, the wheel and its SHA-256, nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from battletracker.release import installed_version
from battletracker.settings import Settings
from battletracker.web.app import create_app
from battletracker.web.secret import new_secret_key


def _client(**settings: str) -> TestClient:
    return TestClient(create_app(Settings(secret_key=new_secret_key(), **settings)))


def test_without_a_wheel_the_server_announces_only_versions() -> None:
    body = _client(node_constraints="").get("/api/v1/node/release").json()
    assert body == {"version": installed_version(), "required_version": installed_version(),
                    "wheel": None, "constraints_url": None}  # fmt: skip


def test_the_checkouts_node_constraints_are_offered_by_default() -> None:
    from battletracker.web.api.releases import __file__ as here

    root = Path(here).resolve().parents[3]
    client = TestClient(create_app(Settings(secret_key=new_secret_key(),
                        node_constraints=str(root / Settings().node_constraints))))  # fmt: skip
    url = client.get("/api/v1/node/release").json()["constraints_url"]
    assert url == "/api/v1/node/constraints.txt"
    assert "celery==" in client.get(url).text


def test_the_wheel_is_announced_with_its_hash_and_only_it_is_served(tmp_path: Path) -> None:
    wheel = tmp_path / "battletracker-9.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a zip, but bytes with a hash" * 100)
    constraints = tmp_path / "node.txt"
    constraints.write_text("celery==5.7.0\n")
    client = _client(node_wheel=str(wheel), required_node_version="9.1.0",
                     node_constraints=str(constraints))  # fmt: skip
    body = client.get("/api/v1/node/release").json()
    assert body["required_version"] == "9.1.0"
    assert body["wheel"] == {
        "filename": wheel.name, "version": "9.1.0", "size": wheel.stat().st_size,
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "url": f"/api/v1/node/wheel/{wheel.name}",
    }  # fmt: skip
    assert client.get(body["wheel"]["url"]).content == wheel.read_bytes()
    assert client.get(body["constraints_url"]).text == "celery==5.7.0\n"
    for other in ("battletracker-9.0.0-py3-none-any.whl", "..%2Fnode.txt", "node.txt"):
        assert client.get(f"/api/v1/node/wheel/{other}").status_code == 404
    # a changed file is hashed again
    wheel.write_bytes(b"other bytes")
    again = client.get("/api/v1/node/release").json()["wheel"]
    assert again["sha256"] == hashlib.sha256(b"other bytes").hexdigest()
