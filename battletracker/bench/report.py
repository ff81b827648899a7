"""Benchmark figures beside their references and targets, printed and written as JSON.

Every figure may carry a reference measured in the same run (so a shared, noisy machine
slows both alike and the ratio still means something) and a target; a benchmark whose
figure misses its target makes ``battletracker bench`` exit non-zero.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Outcome", "machine", "markdown", "render", "write_json"]


@dataclass
class Figure:
    """One measured figure; ``met`` is None when it has no target (shown for context)."""

    name: str
    value: float
    unit: str = ""
    reference: float | None = None
    reference_label: str = ""
    target: str = ""
    met: bool | None = None

    def at_least(self, bound: float) -> Figure:
        self.target, self.met = f">= {bound:g}", self.value >= bound
        return self

    def at_most(self, bound: float) -> Figure:
        self.target, self.met = f"<= {bound:g}", self.value <= bound
        return self

    def below(self, bound: float) -> Figure:
        self.target, self.met = f"< {bound:g}", self.value < bound
        return self

    def equals(self, bound: float) -> Figure:
        self.target, self.met = f"= {bound:g}", self.value == bound
        return self


@dataclass
class Outcome:
    """What one benchmark measured, with what parameters, and notes on what bounds it."""

    bench: str
    params: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: A series to chart (e.g. ids/s per second of a capacity run): [[t, value], ...].
    series: list[list[float]] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    @property
    def met(self) -> bool:
        return all(f.met is not False for f in self.figures)


def machine() -> dict[str, Any]:
    """Where and under what load a run was measured."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) // 1024
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": mem,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_at_start": load,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def render(outcome: Outcome) -> str:
    """A plain table of one benchmark's figures."""
    lines = [
        f"== {outcome.bench} ({outcome.seconds:.1f} s) "
        + " ".join(f"{k}={v}" for k, v in outcome.params.items())
    ]
    for f in outcome.figures:
        ref = f"  [ref {f.reference_label}: {_num(f.reference)}]" if f.reference_label else ""
        verdict = "" if f.met is None else ("  ok" if f.met else "  MISSED")
        target = f"  target {f.target}" if f.target else ""
        lines.append(f"  {f.name:<44}{_num(f.value):>14} {f.unit}{ref}{target}{verdict}")
    lines += [f"  note: {n}" for n in outcome.notes]
    return "\n".join(lines)


def write_json(path: Path, outcomes: Sequence[Outcome], info: dict[str, Any]) -> None:
    """All outcomes of one run, with the machine they ran on."""
    doc = {
        "machine": info,
        "all_met": all(o.met for o in outcomes),
        "benchmarks": [{**asdict(o), "met": o.met} for o in outcomes],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def markdown(doc: dict[str, Any]) -> str:
    """The table of a JSON run (as :func:`write_json` wrote it), for docs/performance.md."""
    m = doc["machine"]
    lines = [
        f"Run of {m['date']} on `{m['host']}`: {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['memory_mib']:,} MiB, Python {m['python']}; load average at start "
        f"{', '.join(f'{x:.1f}' for x in m.get('loadavg_at_start', []))}; size "
        f"`{m.get('size', '?')}`.",
        "",
        "| benchmark | figure | value | reference | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for b in doc["benchmarks"]:
        for f in b["figures"]:
            ref = f"{_num(f['reference'])} ({f['reference_label']})" if f["reference_label"] else ""
            met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
            lines.append(
                f"| {b['bench']} | {f['name']} | {_num(f['value'])} {f['unit']} | "
                f"{ref} | {f['target']} | {met} |"
            )
    return "\n".join(lines) + "\n"
