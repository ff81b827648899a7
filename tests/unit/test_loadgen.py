"""The web benchmark's load generator counts every non-2xx answer and every broken
connection as an error, and keeps the others' latencies (against a bare HTTP server)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from battletracker.bench.loadgen import run

ANSWERS = {
    "/ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nx-cache: hit\r\n\r\nok",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "/missing": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    "/boom": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
    "/redirect": b"HTTP/1.1 303 See Other\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n",
    "/healthz": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            if path == "/drop":  # a server that dies mid-request
                break
            writer.write(ANSWERS[path])
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(_handle, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _run(url: str, paths: list[str]) -> dict[str, object]:
    return asyncio.run(run(url, paths, clients=3, seconds=0.3))


def test_2xx_answers_are_no_errors(url: str) -> None:
    got = _run(url, ["/ok", "/chunked"])
    assert got["requests"] > 10 and got["errors"] == 0
    assert 0 < got["hit_share"] < 1  # /ok says hit, /chunked does not
    assert got["p99"] > 0 and got["health_p99"] > 0


@pytest.mark.parametrize("path", ["/missing", "/boom", "/redirect", "/drop"])
def test_non_2xx_and_broken_connections_are_errors(url: str, path: str) -> None:
    got = _run(url, [path])
    assert got["requests"] > 0 and got["errors"] == got["requests"]
    assert path in str(got["first_errors"])


def test_it_runs_as_its_own_process_and_prints_json(url: str, tmp_path: Path) -> None:
    listing = tmp_path / "paths.txt"
    listing.write_text("/ok\n/boom\n")
    done = subprocess.run(
        [sys.executable, "-m", "battletracker.bench.loadgen", "--url", url, "--paths",
         str(listing), "--clients", "2", "--seconds", "0.5", "--header", "X-Probe: 1"],
        capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(done.stdout)
    assert got["requests"] > 0 and 0 < got["errors"] < got["requests"]
