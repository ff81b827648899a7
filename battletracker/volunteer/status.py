"""``battletracker node status``: the lease, version, work done, and what the server thinks of us.

The local half comes from the node's own files (written by ``node run`` and its worker),
so it works offline; the server's half (credit, trust, what it stored) is asked for when
the server can be reached and is shown as unavailable otherwise.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from ..release import installed_version
from .ledger import LEDGER_FILE, RUNNER_FILE, read_json

__all__ = ["format_status", "local_status"]


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - Windows: trust the state file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _latest_error(*errors: Any) -> dict[str, Any] | None:
    found = [e for e in errors if isinstance(e, dict) and e.get("at")]
    return max(found, key=lambda e: str(e["at"])) if found else None


def local_status(directory: Path, today: dt.date | None = None) -> dict[str, Any]:
    """What this machine knows: version, whether ``node run`` runs, the lease, work done."""
    runner = read_json(directory / RUNNER_FILE)
    ledger = read_json(directory / LEDGER_FILE)
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    days = ledger.get("days") if isinstance(ledger.get("days"), dict) else {}
    running = runner.get("state") == "running" and _alive(runner.get("pid"))
    return {
        "version": installed_version(),
        "running": running,
        "state": runner.get("state", "never started") if running or runner.get("state") !=
        "running" else "not running (stopped unexpectedly)",
        "lease": runner.get("lease"),
        "today": days.get(day, {"chunks": 0, "accounts": 0, "ids": 0}),  # type: ignore[union-attr]
        "total": ledger.get("total", {"chunks": 0, "accounts": 0, "ids": 0}),
        "last_chunk_at": ledger.get("last_chunk_at"),
        "last_error": _latest_error(runner.get("last_error"), ledger.get("last_error")),
    }  # fmt: skip


def format_status(local: dict[str, Any], server: dict[str, Any] | None,
                  server_error: str | None = None) -> str:  # fmt: skip
    """Plain lines for a volunteer."""
    lines = [f"node        {local['state']} (battletracker {local['version']})"]
    lease = local.get("lease")
    if lease:
        keys = ", ".join(f"{k['key']} at {k['rps']:g} rps" for k in lease.get("keys", []))
        lines.append(f"lease       node {lease.get('node_id')}: {keys or 'no key'}, "
                     f"until {lease.get('expires_at')}")  # fmt: skip
    else:
        lines.append("lease       none yet")
    t, total = local["today"], local["total"]
    lines.append(f"today       {t.get('chunks', 0)} chunks, {t.get('accounts', 0)} accounts")
    lines.append(
        f"in total    {total.get('chunks', 0)} chunks, {total.get('accounts', 0)} accounts"
    )
    if server is not None:
        shown = ", ".join(f"{k} {v}" for k, v in server.items() if v is not None)
        lines.append(f"server view {shown}")
    else:
        lines.append(f"server view unavailable{f' ({server_error})' if server_error else ''}")
    err = local.get("last_error")
    lines.append(f"last error  {err['at']}: {err['text']}" if err else "last error  none")
    return "\n".join(lines)
