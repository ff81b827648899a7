"""Service files from the package's templates: what each OS's own checker accepts.

The systemd unit goes through ``systemd-analyze verify`` (installed on this machine, so
the test fails rather than skips without it); the launchd plist through ``plutil -lint``
where it exists, else an XML parse of its structure; the Task Scheduler definition is
parsed as the UTF-16 XML that ``schtasks /Create /XML`` reads.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from battletracker.cli import main
from battletracker.volunteer.service import render_service

VENV = Path(sys.prefix)
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    node_dir = tmp_path / "node dir %h"  # a space and a specifier must survive quoting
    unit = render_service("linux", venv=VENV, node_dir=node_dir, home=tmp_path)
    assert unit.path == tmp_path / ".config/systemd/user/battletracker-node.service"
    unit.path.parent.mkdir(parents=True)
    unit.path.write_text(unit.text)
    assert shutil.which("systemd-analyze"), "systemd-analyze is needed to check the unit"
    # a user manager needs a runtime directory; a container without a session has none
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run(["systemd-analyze", "verify", "--user", str(unit.path)],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    problems = [line for line in done.stderr.splitlines() if "battletracker-node" in line]
    assert done.returncode == 0 and not problems, done.stderr
    exec_start = next(line for line in unit.text.splitlines() if line.startswith("ExecStart="))
    assert (
        f'"{VENV}/bin/battletracker" "node" "run" "--dir" "{tmp_path}/node dir %%h"' in exec_start
    )
    assert "KillMode=mixed" in unit.text and "Nice=10" in unit.text


def test_launchd_plist_is_valid(tmp_path: Path) -> None:
    agent = render_service("macos", venv=VENV, node_dir=tmp_path / "a&b<c", home=tmp_path)
    assert agent.path == tmp_path / "Library/LaunchAgents/org.battletracker.node.plist"
    agent.path.parent.mkdir(parents=True)
    agent.path.write_text(agent.text)
    if shutil.which("plutil"):
        subprocess.run(["plutil", "-lint", str(agent.path)], check=True, timeout=30)
    data = plistlib.loads(agent.path.read_bytes())
    assert data["Label"] == "org.battletracker.node"
    assert data["ProgramArguments"] == [str(VENV / "bin/battletracker"), "node", "run",
                                        "--dir", str(tmp_path / "a&b<c")]  # fmt: skip
    assert data["RunAtLoad"] is True and data["KeepAlive"] is True
    assert data["ProcessType"] == "Background" and data["Nice"] == 10


def test_windows_task_is_a_logon_task_running_node_run(tmp_path: Path) -> None:
    task = render_service("windows", venv=tmp_path / "venv", node_dir=tmp_path / "node",
                          user="volunteer")  # fmt: skip
    assert task.path == tmp_path / "node" / "battletracker-node.xml"
    task.path.parent.mkdir(parents=True)
    task.path.write_text(task.text, encoding=task.encoding)
    raw = task.path.read_bytes()
    assert raw[:2] in (b"\xff\xfe", b"\xfe\xff")  # UTF-16 with a BOM, as schtasks wants
    root = ET.fromstring(raw.decode("utf-16").split("?>", 1)[1])
    assert root.find("t:Triggers/t:LogonTrigger/t:UserId", TASK_NS).text == "volunteer"  # type: ignore[union-attr]
    assert root.find("t:Settings/t:Priority", TASK_NS).text == "7"  # type: ignore[union-attr]
    assert root.find("t:Settings/t:ExecutionTimeLimit", TASK_NS).text == "PT0S"  # type: ignore[union-attr]
    command = root.find("t:Actions/t:Exec/t:Command", TASK_NS).text  # type: ignore[union-attr]
    arguments = root.find("t:Actions/t:Exec/t:Arguments", TASK_NS).text  # type: ignore[union-attr]
    assert command == str(tmp_path / "venv/Scripts/pythonw.exe")
    assert arguments is not None and arguments.startswith("-m battletracker node run --dir ")


def test_install_and_uninstall_service_in_a_fresh_home(tmp_path: Path) -> None:
    """The command a volunteer runs: the unit lands in their home, and goes away again."""
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    runner = CliRunner()
    out = runner.invoke(main, ["node", "install-service", "--no-start", "--dir",
                               str(tmp_path / "node")], env=env)  # fmt: skip
    assert out.exit_code == 0, out.output
    unit = tmp_path / ".config/systemd/user/battletracker-node.service"
    assert unit.is_file() and f"wrote {unit}" in out.output
    assert str(tmp_path / "node") in unit.read_text()
    out = runner.invoke(main, ["node", "uninstall-service", "--dir", str(tmp_path / "node")],
                        env=env)  # fmt: skip
    assert out.exit_code == 0, out.output
    assert not unit.exists() and f"removed {unit}" in out.output
    assert os.environ.get("HOME") != str(tmp_path)  # the test did not leak its HOME
