"""Where a process spends its time, from py-spy samples (what bounds a benchmark now).

``py-spy record --format raw`` writes one line per distinct stack with its sample count;
the summary is the functions most often on top of the stack (self time) and the
package-level callers they sit under, enough to say what bounds a run in a note.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["Sampler", "summarise"]


class Sampler:
    """``py-spy record`` of ``pid`` (and its children) for ``seconds``, in the background."""

    def __init__(self, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.proc: subprocess.Popen[bytes] | None = None
        if Path(exe).exists():
            self.proc = subprocess.Popen(
                [
                    exe,
                    "record",
                    "--subprocesses",
                    "--nonblocking",
                    "-r",
                    "50",
                    "-d",
                    str(int(seconds)),
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                    "-p",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def finish(self, top: int = 6) -> str:
        if self.proc is None:
            return "py-spy not installed (pip install py-spy)"
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not self.out.exists():
            return "py-spy wrote no profile (ptrace not permitted?)"
        return summarise(self.out.read_text(errors="replace"), top)


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "module.function"
    name, _, where = frame.partition(" (")
    module = Path(where.split(":")[0]).stem if where else ""
    return f"{module}.{name}" if module else name


def summarise(raw: str, top: int = 6) -> str:
    """The top self-time functions with their share of all samples."""
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        idle = any(
            (
                "select" in f
                or "epoll" in f
                or "wait" in f.split(" (")[0]
                or "sleep" in f
                or "recv" in f.split(" (")[0]
            )
            for f in frames[-1:]
        )
        total += n
        leaves["(idle: waiting)" if idle else _frame_name(frames[-1])] += n
    if not total:
        return "no samples"
    parts = [f"{name} {count / total:.0%}" for name, count in leaves.most_common(top)]
    return f"{total} samples; top of stack: " + ", ".join(parts)
