"""A node's own record of its work: chunks and accounts per day and in total, and its last error.

Two small JSON files in the node directory, each with one writer so they never race:
``ledger.json`` is written by the fetch worker after each chunk, ``runner.json`` by
``battletracker node run`` (lease summary, version, last error). ``node status`` reads both.
Files are replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "LEDGER_FILE",
    "RUNNER_FILE",
    "read_json",
    "record_chunk",
    "record_error",
    "update_runner",
    "write_json",
]

LEDGER_FILE = "ledger.json"
RUNNER_FILE = "runner.json"
#: Days kept in the ledger (a year of history is a few kilobytes).
KEEP_DAYS = 400


def read_json(path: Path) -> dict[str, Any]:
    """The file's object, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def record_chunk(directory: Path, *, accounts: int, ids: int,
                 today: dt.date | None = None) -> None:  # fmt: skip
    """Count one fetched chunk (today, UTC, and in total)."""
    path = directory / LEDGER_FILE
    data = read_json(path)
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    days: dict[str, Any] = data.get("days") if isinstance(data.get("days"), dict) else {}  # type: ignore[assignment]
    for bucket in (days.setdefault(day, {}), data.setdefault("total", {})):
        bucket["chunks"] = int(bucket.get("chunks", 0)) + 1
        bucket["accounts"] = int(bucket.get("accounts", 0)) + accounts
        bucket["ids"] = int(bucket.get("ids", 0)) + ids
    data["days"] = dict(sorted(days.items())[-KEEP_DAYS:])
    data["last_chunk_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json(path, data)


def record_error(directory: Path, text: str) -> None:
    """Remember the worker's last error (shown by ``node status``)."""
    path = directory / LEDGER_FILE
    data = read_json(path)
    data["last_error"] = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                          "text": text[:500]}  # fmt: skip
    write_json(path, data)


def update_runner(directory: Path, **changes: Any) -> None:
    """Merge ``changes`` into ``runner.json`` (written by ``node run`` only)."""
    path = directory / RUNNER_FILE
    data = read_json(path)
    data.update(changes)
    data["updated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_json(path, data)
