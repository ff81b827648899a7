"""Wheels of this checkout, as an operator builds them for ``node_wheel`` (any version)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from battletracker.release import installed_version

ROOT = Path(__file__).resolve().parents[3]


def build_wheel(version: str, out: Path, work: Path) -> Path:
    """``pip wheel`` of a copy of the checkout with its version set to ``version``."""
    current = installed_version()
    src = work / f"src-{version}"
    shutil.copytree(ROOT / "battletracker", src / "battletracker",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cfg = src / "setup.cfg"
    cfg.write_text(cfg.read_text().replace(f"version = {current}", f"version = {version}", 1))
    init = src / "battletracker/__init__.py"
    init.write_text(init.read_text().replace(f'"{current}"', f'"{version}"'))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)  # fmt: skip
    return next(out.glob(f"battletracker-{version}-*.whl"))
