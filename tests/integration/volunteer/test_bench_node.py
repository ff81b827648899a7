"""The node benchmark runs end to end (small size: its figures are printed, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.volunteer.wheels import ROOT

pytestmark = pytest.mark.integration


def test_bench_node_measures_a_running_node() -> None:
    cmd = [sys.executable, str(ROOT / "scripts/bench_node.py"), "--ids", "2000", "--chunk", "500"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a target missed
    figures = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert figures["ids"] == 2000 and figures["api_outcomes"]["ok"] == 20
    assert figures["cpu_seconds_per_100k_ids"] > 0 and figures["peak_rss_mib_largest_process"] > 0
    assert figures["node_processes"] == 2  # node run and its one worker process
    assert "targets:" in done.stdout
