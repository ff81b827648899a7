"""Run ``node run`` at login and keep it running: a systemd user unit, a launchd agent, a Task.

The files come from templates shipped in the package (``volunteer/templates``), filled in
with this environment's ``battletracker`` and the node directory, so what a test checks
is exactly what a volunteer gets. Registering with the service manager is a separate
step that is skipped, with a clear word, where there is none (a container, no session bus).
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape

__all__ = [
    "SYSTEMS",
    "ServiceFile",
    "current_system",
    "install_service",
    "render_service",
    "uninstall_service",
]

SYSTEMS = ("linux", "macos", "windows")
UNIT_NAME = "battletracker-node.service"
AGENT_LABEL = "org.battletracker.node"
TASK_NAME = "battletracker-node"


@dataclass(frozen=True)
class ServiceFile:
    """A rendered service definition and where it belongs."""

    system: str
    path: Path
    text: str
    encoding: str = "utf-8"


def current_system() -> str:
    if os.name == "nt":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("templates", name).read_text("utf-8"))


def _battletracker(venv: Path, system: str) -> Path:
    return venv / ("Scripts/battletracker.exe" if system == "windows" else "bin/battletracker")


def _systemd_quote(arg: str) -> str:
    """systemd's ExecStart quoting: double quotes, backslash escapes, ``%`` doubled."""
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def render_service(system: str, *, venv: Path, node_dir: Path, home: Path | None = None,
                   user: str | None = None) -> ServiceFile:  # fmt: skip
    """The service definition of ``system`` for the node in ``node_dir`` run from ``venv``."""
    home = home or Path.home()
    exe = _battletracker(venv, system)
    args = [str(exe), "node", "run", "--dir", str(node_dir)]
    if system == "linux":
        config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        text = _template(UNIT_NAME).substitute(exec_start=" ".join(_systemd_quote(a) for a in args))
        return ServiceFile(system, config / "systemd" / "user" / UNIT_NAME, text)
    if system == "macos":
        program = "\n".join(f"    <string>{escape(a)}</string>" for a in args)
        text = _template(f"{AGENT_LABEL}.plist").substitute(
            label=AGENT_LABEL, program_arguments=program, log=escape(str(node_dir / "node.log"))
        )
        return ServiceFile(system, home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist", text)
    if system == "windows":
        # pythonw: no console window at every logon; so node run logs to a file
        pythonw = venv / "Scripts" / "pythonw.exe"
        arguments = subprocess.list2cmdline(
            ["-m", "battletracker", *args[1:], "--log-file", str(node_dir / "node.log")]
        )
        text = _template(f"{TASK_NAME}.xml").substitute(
            task_name=TASK_NAME, user=escape(user or getpass.getuser()),
            command=escape(str(pythonw)), arguments=escape(arguments),
        )  # fmt: skip
        return ServiceFile(system, node_dir / f"{TASK_NAME}.xml", text, encoding="utf-16")
    raise ValueError(f"unknown system {system!r} (one of {', '.join(SYSTEMS)})")


def _run(cmd: list[str]) -> tuple[bool, str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _manager_steps(system: str, path: Path, start: bool) -> list[list[str]]:
    if system == "linux":
        steps = [["systemctl", "--user", "daemon-reload"]]
        if start:
            steps.append(["systemctl", "--user", "enable", "--now", UNIT_NAME])
        return steps
    if system == "macos":
        domain = f"gui/{os.getuid()}"
        return [["launchctl", "bootstrap", domain, str(path)]] if start else []
    return [["schtasks", "/Create", "/TN", TASK_NAME, "/XML", str(path), "/F"],
            *([["schtasks", "/Run", "/TN", TASK_NAME]] if start else [])]  # fmt: skip


def install_service(system: str, *, venv: Path, node_dir: Path, start: bool = True) -> list[str]:
    """Write the service file and register it; returns what happened, line by line."""
    service = render_service(system, venv=venv, node_dir=node_dir)
    service.path.parent.mkdir(parents=True, exist_ok=True)
    service.path.write_text(service.text, encoding=service.encoding)
    lines = [f"wrote {service.path}"]
    tool = {"linux": "systemctl", "macos": "launchctl", "windows": "schtasks"}[system]
    if shutil.which(tool) is None:
        return [*lines, f"{tool} is not available here: the file is written but not registered"]
    for step in _manager_steps(system, service.path, start):
        ok, out = _run(step)
        if not ok:
            hint = (
                " (no systemd user session: log in normally, or run "
                f"`loginctl enable-linger {getpass.getuser()}` once)"
                if system == "linux"
                else ""
            )
            return [*lines, f"`{shlex.join(step)}` failed{hint}: {out}"]
        lines.append(f"ran {shlex.join(step)}")
    if system == "linux" and start:
        lines.append(f"to run while you are logged out: loginctl enable-linger {getpass.getuser()}")
    return lines


def uninstall_service(system: str, *, node_dir: Path) -> list[str]:
    """Stop and unregister the service, then remove its file."""
    service = render_service(system, venv=Path(sys.prefix), node_dir=node_dir)
    steps = {
        "linux": [["systemctl", "--user", "disable", "--now", UNIT_NAME]],
        "macos": [["launchctl", "bootout", f"gui/{os.getuid()}/{AGENT_LABEL}"]]
        if hasattr(os, "getuid") else [],
        "windows": [["schtasks", "/End", "/TN", TASK_NAME],
                    ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]],
    }[system]  # fmt: skip
    lines = []
    tool = {"linux": "systemctl", "macos": "launchctl", "windows": "schtasks"}[system]
    if shutil.which(tool) is not None:
        for step in steps:
            ok, out = _run(step)
            lines.append(f"ran {shlex.join(step)}" if ok else f"`{shlex.join(step)}`: {out}")
    if service.path.exists():
        service.path.unlink()
        lines.append(f"removed {service.path}")
        if system == "linux" and shutil.which("systemctl"):
            _run(["systemctl", "--user", "daemon-reload"])
    else:
        lines.append(f"no service file at {service.path}")
    return lines
