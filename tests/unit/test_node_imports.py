"""A volunteer's fetch worker loads no database, ORM, web or Elasticsearch package.

Each check runs in a fresh interpreter: modules the test process itself imported would
hide what the node really pulls in.
"""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_ONLY = ("sqlalchemy", "psycopg2", "psycopg", "elasticsearch", "fastapi", "alembic")


def _loaded_after(code: str) -> dict[str, object]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        f"print(json.dumps({{'heavy': [m for m in {SERVER_ONLY!r} if m in sys.modules],"
        " 'tasks': sorted(t for t in app.tasks if t.startswith('battletracker.'))}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_fetch_worker_loads_only_the_fetch_task_and_no_server_package() -> None:
    # what ``celery -A battletracker.fetcher worker`` does before it consumes
    seen = _loaded_after(
        "from battletracker.fetcher import app\n"
        "app.loader.import_default_modules()\n"
        "app.finalize()"
    )
    assert seen["heavy"] == []
    assert seen["tasks"] == ["battletracker.fetch_range"]


def test_server_app_loads_every_task() -> None:
    seen = _loaded_after("from battletracker import app\napp.loader.import_default_modules()")
    assert "battletracker.store_results" in seen["tasks"]  # type: ignore[operator]
    assert "sqlalchemy" in seen["heavy"]  # type: ignore[operator]


def test_importing_the_package_reads_no_settings() -> None:
    # a broken config must not break ``import battletracker``: configuration is lazy
    probe = (
        "import os, sys\n"
        "os.environ['BATTLETRACKER_CHUNK_SIZE'] = 'not a number'\n"
        "import battletracker, battletracker.fetcher\n"
        f"print([m for m in {SERVER_ONLY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_server_command_on_a_node_install_says_what_to_install() -> None:
    # a node's slim install has none of the server packages: simulate their absence
    probe = (
        "import sys\n"
        "for m in ('sqlalchemy', 'psycopg', 'psycopg2', 'alembic'): sys.modules[m] = None\n"
        "from battletracker.cli import main\n"
        "main(['db', 'upgrade'])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "pip install 'battletracker[server]'" in out.stderr
    assert "Traceback" not in out.stderr
