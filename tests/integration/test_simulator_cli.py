"""``battletracker simulator --strict-window``: the strict limit over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_strict_window_refuses_the_third_request_of_a_two_per_second_key() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "battletracker"), "simulator", "--port", str(port), "--keys", "k:2",
         "--xbox-ids", "300", "--ps-ids", "0", "--strict-window"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(root + "/_sim/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        params = {"application_id": "k", "account_id": "5000"}
        answers = [httpx.get(root + "/wotx/account/info/", params=params).json()["status"]
                   for _ in range(3)]  # fmt: skip
        assert answers == ["ok", "ok", "error"]
        stats = httpx.get(root + "/_sim/stats").json()
        assert stats["limit"] == "window"
        assert stats["outcomes"] == {"ok": 2, "limit": 1}
        assert stats["peak_per_second"] == {"k": 3}
    finally:
        proc.terminate()
        proc.wait(10)
