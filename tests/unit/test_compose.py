"""docker-compose.yml keeps its rules: pinned images of supported majors, healthchecks,
start order, profiles, secrets without defaults, the broker's TLS listener. The YAML is
checked here on every run; ``docker-compose config`` validates it too where installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from battletracker.supported import ELASTICSEARCH_MAJOR, SERVICES, elasticsearch_major_of_compose

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES_ = COMPOSE["services"]
ENV_EXAMPLE = ROOT / ".env.example"
ONE_SHOT = {"migrate", "kibana-setup"}
AFTER_MIGRATE = {"worker", "beat", "web", "flower"}
SECRETS = {"POSTGRES_PASSWORD", "DB_WORKER_PASSWORD", "DB_WEB_PASSWORD", "RABBITMQ_PASSWORD",
           "SECRET_KEY", "FLOWER_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
IMAGE_MAJOR = {"postgres": "postgresql", "rabbitmq": "rabbitmq",
               "elasticsearch/elasticsearch": "elasticsearch", "kibana/kibana": "kibana"}


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k: v for k, v in pairs}


def test_every_image_is_pinned_to_an_exact_version_of_a_supported_major() -> None:
    for name, svc in SERVICES_.items():
        image = svc.get("image")
        if "build" in svc:
            continue
        assert image, name
        repo, _, tag = image.rpartition(":")
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", tag), (name, image)
        for suffix, service in IMAGE_MAJOR.items():
            if repo.endswith(suffix):
                major = int(tag.lstrip("v").split(".")[0])
                assert SERVICES[service].accepts(major), (image, SERVICES[service])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim-\w+$", dockerfile, re.M)
    assert "-c constraints/server.txt" in dockerfile


def test_the_elasticsearch_majors_agree() -> None:
    pins = dict(line.split("==") for line in
                (ROOT / "constraints/server.txt").read_text().splitlines() if "==" in line)
    assert elasticsearch_major_of_compose() == ELASTICSEARCH_MAJOR
    assert int(pins["elasticsearch"].split(".")[0]) == ELASTICSEARCH_MAJOR
    kibana = SERVICES_["kibana"]["image"].rpartition(":")[2]
    assert kibana == SERVICES_["elasticsearch"]["image"].rpartition(":")[2]


def test_long_running_services_have_healthchecks() -> None:
    for name, svc in SERVICES_.items():
        if name in ONE_SHOT:
            assert svc["restart"] == "on-failure", name  # retried if it lost a race
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_migrate_completes_before_workers_beat_and_web_start() -> None:
    assert SERVICES_["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES_["migrate"]["command"] == "battletracker db upgrade"
    for name in AFTER_MIGRATE:
        deps = SERVICES_[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert deps["rabbitmq"] == {"condition": "service_healthy"}, name
    assert SERVICES_["kibana"]["depends_on"]["elasticsearch"]["condition"] == "service_healthy"


def test_profiles() -> None:
    profiles = {name: tuple(svc.get("profiles", ())) for name, svc in SERVICES_.items()}
    assert {n for n, p in profiles.items() if p == ("elastic",)} == {
        "elasticsearch", "kibana", "kibana-setup"}
    assert {n for n, p in profiles.items() if p == ("monitoring",)} == {"prometheus", "grafana"}
    assert {n for n, p in profiles.items() if p == ("node",)} == {"node"}
    assert {n for n, p in profiles.items() if not p} == {
        "postgres", "rabbitmq", "migrate", *AFTER_MIGRATE}


def test_secrets_have_no_working_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text.lower()
    used = set(re.findall(r"\$\{(\w+)", text))
    example = _env_example()
    assert used <= set(example), used - set(example)
    for secret in SECRETS:
        assert secret in used
        assert example[secret] == "", f"{secret} has a value in .env.example"
        forms = set(re.findall(rf"\$\{{{secret}(:?[?-])?", text))
        assert forms == {":?"}, f"{secret} must be required (${{{secret}:?…}})"


def test_the_broker_publishes_tls_only_and_no_admin_port() -> None:
    rabbit = SERVICES_["rabbitmq"]
    published = [str(p) for p in rabbit["ports"]]
    assert "5671:5671" in published
    assert not any(p.endswith(":5672") or p == "5672" for p in published)
    assert all(p.startswith("127.0.0.1:") for p in published if p.endswith(":15672"))
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    assert "listeners.ssl.default = 5671" in conf
    assert "ssl_options.certfile" in conf
    for name, svc in SERVICES_.items():  # nothing else is open to the world
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:") or str(port) == "5671:5671", (name, port)


def test_each_service_uses_its_database_role() -> None:
    def url(name: str) -> str:
        return str(SERVICES_[name]["environment"]["BATTLETRACKER_DATABASE_URL"])

    assert url("migrate").startswith("postgresql://battletracker:")
    assert url("worker").startswith("postgresql://battletracker_worker:")
    assert url("web").startswith("postgresql://battletracker_web:")
    assert "BATTLETRACKER_DATABASE_URL" not in SERVICES_["beat"]["environment"]
    env = SERVICES_["migrate"]["environment"]
    assert {"BATTLETRACKER_DB_WEB_PASSWORD", "BATTLETRACKER_DB_WORKER_PASSWORD"} <= set(env)


def test_nodes_are_offered_the_node_constraints() -> None:
    offered = SERVICES_["web"]["environment"]["BATTLETRACKER_NODE_CONSTRAINTS"]
    assert offered == "/app/constraints/node.txt"  # WORKDIR /app: the checkout's file
    assert (ROOT / "constraints/node.txt").is_file()
    assert "constraints" not in (ROOT / ".dockerignore").read_text().split()


def test_dockerignore_keeps_the_image_clean() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "demo-data", ".env", "tests"} <= ignored


def _metric_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "battletracker").rglob("*.py"):
        names.update(re.findall(r"\"(battletracker_[a-z_]+)\"", path.read_text()))
    return names | {n + suffix for n in names for suffix in ("_total", "_bucket", "_count",
                                                              "_sum")}


def test_prometheus_scrapes_web_and_workers_and_grafana_shows_the_night() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in prom["scrape_configs"]}
    assert targets["web"] == ["web:8000"]
    # the web app answers /metrics without a token to Prometheus's fixed address only
    address = SERVICES_["prometheus"]["networks"]["backend"]["ipv4_address"]
    allowed = SERVICES_["web"]["environment"]["BATTLETRACKER_METRICS_NETWORKS"].split(",")
    assert f"{address}/32" in allowed and not any(n.startswith("172.28.0.0") for n in allowed)
    assert "worker:9100" in targets["worker"]
    assert SERVICES_["worker"]["environment"]["BATTLETRACKER_WORKER_METRICS_PORT"] == "9100"
    dash = json.loads((ROOT / "deploy/grafana/dashboards/night.json").read_text())
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in dash["panels"]}
    known = _metric_names()
    for title, items in exprs.items():
        for expr in items:
            used = set(re.findall(r"battletracker_[a-z_]+", expr))
            assert used and used <= known, (title, used - known)
    joined = " ".join(" ".join(e) for e in exprs.values())
    for needed in ("battletracker_cycle_chunks", "battletracker_store_rows_total",
                   'outcome="limit_exceeded"', "battletracker_queue_ready"):
        assert needed in joined
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in dash["panels"])


@pytest.mark.parametrize("profile", ["", "elastic", "monitoring", "node"])
def test_docker_compose_config_accepts_the_file(tmp_path: Path, profile: str) -> None:
    """Debian's docker-compose (v1.29) validates offline; .ci/run installs it."""
    assert shutil.which("docker-compose"), "install docker-compose (apt-get install docker-compose)"
    filled = tmp_path / "filled.env"
    filled.write_text("".join(f"{k}={v or 'x' + k.lower()}\n"
                              for k, v in _env_example().items()))
    args = ["docker-compose", "--env-file", str(filled), "-f", str(ROOT / "docker-compose.yml")]
    if profile:
        args += ["--profile", profile]
    done = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    empty = subprocess.run(["docker-compose", "--env-file", str(ENV_EXAMPLE), "-f",
                            str(ROOT / "docker-compose.yml"), "config", "-q"],
                           capture_output=True, text=True, timeout=60)
    assert empty.returncode != 0 and "in .env" in empty.stderr  # no secret, no start
