"""The simulator over real HTTP: a threaded server with real latency and dropped sockets.

Integration tests, the demo and the benchmarks need the API behind a real socket so the
client's connection pooling, timeouts and transport errors are exercised. The server is
a thin adapter around :meth:`Simulator.respond`; it adds only what a socket can do:
sleeping before the answer, closing without one, and knowing the caller's IP.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

from .faults import Faults
from .handler import API_PREFIX, Simulator
from .population import Population

__all__ = ["RunningSimulator", "run_forever", "serve"]


#: Linux's per-packet receive timestamps (``SO_TIMESTAMPNS``), in CLOCK_REALTIME.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class _Server(ThreadingHTTPServer):
    """One thread per connection; daemon threads so a stuck client never blocks exit."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many workers may connect at once

    def __init__(self, address: tuple[str, int], sim: Simulator) -> None:
        super().__init__(address, _Handler)
        self.sim = sim

    def server_bind(self) -> None:
        """Receive timestamps on from the listening socket on: an accepted connection
        inherits them, so a request that arrived before its connection was accepted (the
        first of every new connection, under load) still carries the kernel's time of
        arrival, not the time a thread read it."""
        with contextlib.suppress(OSError):  # not Linux: the handler falls back to its read
            self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        super().server_bind()


class _StampedReader(io.RawIOBase):
    """Reads a socket with ``recvmsg``, keeping the kernel's receive time of the last read.

    The rate limit counts a request from when it reached this machine, not from when a
    thread of this Python process got around to it: on a busy host the two differ by
    tens of milliseconds, which a strict one-second window would blame on the client.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.stamp: float | None = None
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._ancillary = socket.CMSG_SPACE(16)
        except OSError:  # not Linux: fall back to the time the thread reads it
            self._ancillary = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._ancillary:
            n = self._sock.recv_into(buffer)
            self.stamp = time.time()
            return n
        data, ancillary, _, _ = self._sock.recvmsg(len(buffer), self._ancillary)
        self.stamp = time.time()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack("qq", payload[:16])
                self.stamp = sec + nsec * 1e-9
        n = len(data)
        buffer[:n] = data
        return n


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the simulator, and writes (or withholds) the answer."""

    arrived: float
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pooling connections expect
    #: Headers and body are written separately; with Nagle on, delayed ACKs would add
    #: ~40 ms to every answer and make latency-free benchmarks meaningless.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._reader = _StampedReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        # The request line has just been read; it reached the host at the kernel's stamp.
        sim = self.server.sim
        self.arrived = sim.clock()
        stamp = self._reader.stamp
        if stamp is not None and sim.clock is time.monotonic:
            self.arrived -= min(max(time.time() - stamp, 0.0), 1.0)
        return super().parse_request()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        reply = self.server.sim.respond(self.command, url.path, url.query, body,
                                        self.headers.get("Content-Type", ""),
                                        self.client_address[0], self.arrived)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may have left first
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a benchmark makes hundreds of thousands of requests."""


class RunningSimulator:
    """A served simulator: ``.url`` is the API base (ending ``/wotx/``); stop with shutdown()."""

    def __init__(self, sim: Simulator, server: _Server, thread: threading.Thread) -> None:
        self.sim = sim
        self._server = server
        self.thread = thread
        host, port = server.server_address[:2]
        self.host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        self.port = int(port)
        #: Root of the server; the control endpoints live under ``{root}/_sim/``.
        self.root = f"http://{self.host}:{self.port}"
        self.url = self.root + API_PREFIX

    def shutdown(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self.thread.is_alive():
            self._server.shutdown()
            self.thread.join()
        self._server.server_close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<RunningSimulator {self.url}>"


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve ``sim`` from a daemon thread; ``port=0`` picks a free port."""
    server = _Server((host, port), sim)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"simulator:{server.server_address[1]}", daemon=True)
    thread.start()
    return RunningSimulator(sim, server, thread)


def run_forever(*, host: str, port: int, seed: int, xbox_ids: int, ps_ids: int,
                new_per_day: int, day: int, keys: dict[str, float],
                latency: tuple[float, float], strict_window: bool = False) -> None:
    """Build a simulator from plain options and serve it until Ctrl-C (for the CLI)."""
    population = Population(seed=seed, xbox_ids=xbox_ids, ps_ids=ps_ids,
                            new_per_day=new_per_day)
    sim = Simulator(population, keys=keys, day=day, faults=Faults(latency=latency),
                    strict_window=strict_window)
    running = serve(sim, host, port)
    print(f"Wargaming API simulator on {running.url} (day {day}, keys: "
          f"{', '.join(f'{k}={v:g}/s' for k, v in keys.items())}); "
          f"control at {running.root}/_sim/. Ctrl-C stops.", flush=True)
    try:
        while running.thread.is_alive():
            running.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        running.shutdown()
