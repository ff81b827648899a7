"""The test-run lock that lets a broker-restarting test run alone under pytest-xdist."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.common.exclusive import hold


def _enter_later(directory: Path, exclusive: bool, entered: list[str], name: str,
                 leave: threading.Event) -> threading.Thread:  # fmt: skip
    def run() -> None:
        with hold(directory, exclusive=exclusive):
            entered.append(name)
            leave.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_shared_holders_run_together_and_an_exclusive_one_waits_for_them(tmp_path: Path) -> None:
    entered: list[str] = []
    leave_shared, leave_exclusive = threading.Event(), threading.Event()
    a = _enter_later(tmp_path, False, entered, "a", leave_shared)
    b = _enter_later(tmp_path, False, entered, "b", leave_shared)
    time.sleep(0.3)
    assert sorted(entered) == ["a", "b"]  # shared: both inside at once
    x = _enter_later(tmp_path, True, entered, "x", leave_exclusive)
    time.sleep(0.3)
    assert "x" not in entered  # waits for a and b
    # a test starting now queues behind the waiting exclusive one (no starvation)
    c = _enter_later(tmp_path, False, entered, "c", leave_shared)
    time.sleep(0.3)
    assert "c" not in entered
    leave_shared.set()
    a.join(5), b.join(5)
    time.sleep(0.3)
    assert entered[2:] == ["x"]  # alone: c still waits while x runs
    leave_exclusive.set()
    x.join(5), c.join(5)
    assert entered[2:] == ["x", "c"]
