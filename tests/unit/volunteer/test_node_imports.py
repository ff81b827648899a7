"""What a node runs for issue 14 loads no database, ORM, web or Elasticsearch package.

Fresh interpreters, with the server packages made unimportable, as on a node's slim
install: the ``node`` commands and the worker app ``node run`` starts must still work.
"""

from __future__ import annotations

import subprocess
import sys

from battletracker.cli import SERVER_PACKAGES

SERVER_ONLY = tuple(sorted(SERVER_PACKAGES))
BLOCK = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in SERVER_ONLY)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_node_modules_and_worker_app_import_without_server_packages() -> None:
    out = _run(
        "import battletracker.volunteer.run, battletracker.volunteer.check\n"
        "import battletracker.volunteer.status, battletracker.volunteer.service\n"
        "import battletracker.volunteer.upgrade, battletracker.volunteer.cli\n"
        "from battletracker.volunteer.worker_app import app\n"
        "app.loader.import_default_modules(); app.finalize()\n"
        "print(sorted(t for t in app.tasks if t.startswith('battletracker.')))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['battletracker.fetch_range']"


def test_node_commands_run_without_server_packages(tmp_path: object) -> None:
    out = _run(
        "from battletracker.cli import main\n"
        f"main(['node', 'status', '--dir', {str(tmp_path)!r}])\n"
    )
    assert out.returncode == 0, out.stderr
    assert "never started" in out.stdout


def test_a_server_command_on_a_node_says_which_install_it_needs() -> None:
    out = _run("from battletracker.cli import main\nmain(['web', '--port', '1'])\n")
    assert out.returncode == 2, out.stderr
    assert "pip install 'battletracker[server]'" in out.stderr and "Traceback" not in out.stderr
