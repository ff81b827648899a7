"""The constraints files pin every requirement, the node and the server agree, and this
environment was installed from them (a drifted install fails here, not at 3 a.m.)."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from battletracker.supported import ELASTICSEARCH_MAJOR

ROOT = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints" / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, _, pinned = line.partition("==")
            assert pinned, f"constraints/{name}: {line!r} is not an exact pin"
            out[_norm(package)] = pinned.strip()
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def _requirements(*sections: str) -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = set()
    for section, key in (s.split(":") for s in sections):
        for line in cfg[section][key].splitlines():
            line = line.split("#")[0].strip()
            if line:
                names.add(_norm(re.split(r"[<>=!~\[; ]", line)[0]))
    return names


SERVER, NODE = _pins("server.txt"), _pins("node.txt")


def test_every_requirement_is_pinned() -> None:
    base = _requirements("options:install_requires")
    server = base | _requirements("options.extras_require:server",
                                  "options.extras_require:test")
    assert base <= set(NODE), base - set(NODE)
    assert server <= set(SERVER), server - set(SERVER)


def test_the_node_runs_the_server_s_versions() -> None:
    """Nodes and the server exchange Celery messages: the same Celery, kombu, amqp."""
    differ = {p: (v, SERVER.get(p)) for p, v in NODE.items() if SERVER.get(p) != v}
    assert not differ, differ


def test_the_elasticsearch_client_is_compose_s_major() -> None:
    assert int(SERVER["elasticsearch"].split(".")[0]) == ELASTICSEARCH_MAJOR


def test_this_environment_was_installed_from_the_constraints() -> None:
    drifted = {}
    for package, pinned in SERVER.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            drifted[package] = (pinned, None)
            continue
        if installed != pinned:
            drifted[package] = (pinned, installed)
    assert not drifted, (f"installed versions differ from constraints/server.txt: {drifted}; "
                         "reinstall with scripts/test (it uses the constraints)")
