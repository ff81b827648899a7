"""``battletracker node check``: can this machine do a node's work? Each problem in plain words.

Every check is a small function returning a :class:`Check`: what was tested, whether it
passed, and for a failure what the volunteer can do about it. Nothing here needs a
lease, but with one the broker login and each leased key are tried too.
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..release import installed_version, older_than
from ..settings import ApiKey
from .upgrade import Release, UpgradeError

__all__ = [
    "Check",
    "check_broker",
    "check_clock",
    "check_key",
    "check_server",
    "check_version",
    "check_wargaming",
    "format_checks",
    "run_checks",
]

#: Leases and dispatch tokens carry times: beyond this skew a node's clock is a problem.
MAX_SKEW_SECONDS = 60.0
#: An account id that exists on the real API (any answer with status ok will do).
PROBE_ACCOUNT = 1_073_740_000


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``ok``, what was checked, and what to do when it failed."""

    name: str
    ok: bool
    detail: str
    todo: str = ""


def check_server(client: httpx.Client, server: str) -> tuple[Check, Release | None, float | None]:
    """The server's API answers; returns its release answer and its clock (from ``Date``)."""
    url = server.rstrip("/") + "/api/v1/node/release"
    try:
        sent = time.time()
        response = client.get(url)
        got = time.time()
        response.raise_for_status()
        release = Release.from_json(response.json())
    except (httpx.HTTPError, ValueError, UpgradeError) as exc:
        problem = Check("server", False, f"the server at {server} did not answer ({exc})",
                        "check the address you were given (it starts with https://) and that "
                        "this machine is online; a work network may block it")  # fmt: skip
        return problem, None, None
    skew = None
    date = response.headers.get("date")
    if date:
        try:
            server_time = email.utils.parsedate_to_datetime(date).timestamp()
            skew = (sent + got) / 2 - server_time
        except (TypeError, ValueError):
            skew = None
    return Check("server", True, f"the server at {server} answers"), release, skew


def check_version(release: Release, current: str | None = None) -> Check:
    current = current or installed_version()
    if older_than(current, release.required_version):
        return Check("version", False,
                     f"this node runs battletracker {current}, the server needs "
                     f"{release.required_version}",
                     "restart the node (`battletracker node run` updates itself from the "
                     "server when it starts) or run the install script again")  # fmt: skip
    return Check("version", True, f"battletracker {current} (the server needs "
                                  f"{release.required_version} or newer)")  # fmt: skip


def check_clock(skew: float | None) -> Check:
    if skew is None:
        return Check("clock", False, "could not compare this machine's clock with the server's",
                     "make sure the server check passes first")  # fmt: skip
    if abs(skew) > MAX_SKEW_SECONDS:
        way = "ahead of" if skew > 0 else "behind"
        off = f"this machine's clock is {abs(skew):.0f} s {way} the server's"
        return Check("clock", False, off,
                     "turn on automatic date and time (NTP) in your system settings")  # fmt: skip
    return Check("clock", True, f"clock within {abs(skew):.0f} s of the server's")


def check_broker(broker_url: str, *, timeout: float = 5.0, login: bool = True) -> Check:
    """The broker's port is reachable (with TLS for ``amqps://``), then the login works."""
    parts = urlsplit(broker_url)
    tls = parts.scheme == "amqps"
    host, port = parts.hostname or "localhost", parts.port or (5671 if tls else 5672)
    where = f"{host}:{port}" + (" (TLS)" if tls else "")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls:
                with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLError as exc:
        return Check("broker", False, f"the broker at {where} answered but TLS failed ({exc})",
                     "your clock may be wrong, or something on your network intercepts "
                     "encrypted connections; tell the operator if it persists")  # fmt: skip
    except OSError as exc:
        return Check("broker", False, f"cannot reach the broker at {where} ({exc})",
                     f"outgoing TCP port {port} must be open: check your firewall or router, "
                     "or ask your network's administrator")  # fmt: skip
    if login:
        import kombu  # only here: the port check above must work without it

        try:
            with kombu.Connection(broker_url, connect_timeout=timeout, ssl=tls) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as exc:  # kombu raises many kinds; each means "no login"
            return Check("broker", False,
                         f"the broker at {where} refused this node's login ({type(exc).__name__})",
                         "the node's lease may have ended or the operator disabled the node: "
                         "restart the node; if it persists, ask the operator")  # fmt: skip
    return Check("broker", True, f"the broker at {where} answers" + (" and lets this node in"
                                                                     if login else ""))  # fmt: skip


def check_wargaming(client: httpx.Client, api_url: str) -> Check:
    host = urlsplit(api_url).hostname or api_url
    try:
        client.get(api_url)
    except httpx.HTTPError as exc:
        return Check("wargaming", False, f"cannot reach the Wargaming API at {host} ({exc})",
                     "this machine must reach the Wargaming API over HTTPS: check your "
                     "firewall, proxy or DNS")  # fmt: skip
    return Check("wargaming", True, f"the Wargaming API at {host} answers")


def check_key(client: httpx.Client, api_url: str, key: ApiKey) -> Check:
    """One small request with ``key``: does the API accept it from this machine?"""
    hint = key.app_id[:4] + "…"
    url = api_url.rstrip("/") + "/account/info/"
    params = {"application_id": key.app_id, "account_id": str(PROBE_ACCOUNT),
              "fields": "account_id"}  # fmt: skip
    try:
        body = client.get(url, params=params).json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check("key", False, f"the API gave no usable answer for key {hint} ({exc})",
                     "try again in a few minutes; if it persists, tell the operator")  # fmt: skip
    if isinstance(body, dict) and body.get("status") == "ok":
        return Check("key", True, f"the API accepts key {hint} from this machine")
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error.get("message")) if isinstance(error, dict) else "no status"
    todo = {
        "INVALID_IP_ADDRESS": "the key is locked to other IP addresses: tell the operator "
        "this machine's public IP, or use a key of your own",
        "INVALID_APPLICATION_ID": "the key is not valid: tell the operator",
        "APPLICATION_IS_BLOCKED": "the key is blocked by Wargaming: tell the operator",
        "REQUEST_LIMIT_EXCEEDED": "the key is busy right now; that is harmless, try again later",
    }.get(message, "tell the operator what this check printed")
    return Check("key", False, f"the API refused key {hint}: {message}", todo)


def format_checks(checks: Sequence[Check]) -> str:
    """One line per check, and for each failure an indented line saying what to do."""
    lines = []
    for c in checks:
        lines.append(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<9} {c.detail}")
        if not c.ok and c.todo:
            lines.append(f"                what to do: {c.todo}")
    bad = sum(not c.ok for c in checks)
    lines.append("all checks passed" if not bad else f"{bad} problem(s) found")
    return "\n".join(lines)


def run_checks(*, client: httpx.Client, server: str | None, broker_url: str | None,
               keys: Sequence[ApiKey], api_url: str) -> list[Check]:  # fmt: skip
    """Every check that applies: the server's ones need ``server``, the broker's a URL."""
    checks = []
    if server:
        check, release, skew = check_server(client, server)
        checks.append(check)
        if release is not None:
            checks += [check_version(release), check_clock(skew)]
    if broker_url:
        checks.append(check_broker(broker_url))
    checks.append(check_wargaming(client, api_url))
    checks += [check_key(client, api_url, k) for k in keys]
    return checks
