"""The install scripts: the bash ones parse, and the PowerShell one does the same steps.

No PowerShell can be installed here (not in Debian's archive, PyPI or npm), so the .ps1
files are reviewed against the steps of the .sh: each step's essential call must be there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "scripts"

#: (step, in install-node.sh, in install-node.ps1)
STEPS = [
    ("Python >= 3.11", r"sys\.version_info < \(3, 11\)", r"sys\.version_info < \(3, 11\)"),
    ("own venv", r"-m venv \"\$venv\"", r"-m venv \$Venv"),
    ("ask the server", r"/api/v1/node/release", r"/api/v1/node/release"),
    ("check the wheel's SHA-256", r"hashlib\.sha256\(data\)", r"Get-FileHash -Algorithm SHA256"),
    ("refuse a wrong hash", r"got != wheel\[\"sha256\"\]", r"\$Got -ne \$Release\.wheel\.sha256"),
    ("constraints", r"--constraint", r"--constraint"),
    ("package index", r"'battletracker\[node\]'", r"\"battletracker\[node\]\""),
    ("register", r"node register --server", r"\"node\", \"register\", \"--server\""),
    ("invite", r"--invite", r"\"--invite\""),
    ("service", r"node install-service", r"node install-service"),
    ("check", r"node check", r"node check"),
]


def test_bash_scripts_parse() -> None:
    for name in ("install-node.sh", "uninstall-node.sh", "check-node"):
        subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True, timeout=30)
        assert (SCRIPTS / name).stat().st_mode & 0o111, f"{name} is not executable"


def test_powershell_install_does_the_same_steps_as_bash() -> None:
    sh = (SCRIPTS / "install-node.sh").read_text()
    ps1 = (SCRIPTS / "install-node.ps1").read_text()
    for step, in_sh, in_ps1 in STEPS:
        assert re.search(in_sh, sh), f"install-node.sh lacks: {step}"
        assert re.search(in_ps1, ps1), f"install-node.ps1 lacks: {step}"
    assert '$ErrorActionPreference = "Stop"' in ps1


def test_uninstall_scripts_remove_the_service_and_the_venv() -> None:
    for name in ("uninstall-node.sh", "uninstall-node.ps1"):
        text = (SCRIPTS / name).read_text()
        assert "node uninstall-service" in text, name
        assert re.search(r"rm -rf \"\$home\"|Remove-Item -Recurse -Force \$Venv", text), name
        assert re.search(r"--purge|-Purge", text), name


def test_docs_name_only_commands_that_exist() -> None:
    from click.testing import CliRunner

    from battletracker.cli import main

    doc = (ROOT / "docs/volunteer.md").read_text()
    for script in re.findall(r"scripts[/\\]([\w.-]+)", doc):
        assert (SCRIPTS / script).is_file(), script
    for sub in set(re.findall(r"battletracker node ([a-z-]+)", doc)):
        out = CliRunner().invoke(main, ["node", sub, "--help"])
        assert out.exit_code == 0, (sub, out.output)
