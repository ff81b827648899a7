"""What the server tells volunteer nodes about versions: ``/api/v1/node/release`` and the wheel.

A node older than ``required_version`` downloads ``wheel.url``, checks its SHA-256
against ``wheel.sha256`` from this answer and installs it; nothing else in the answer is
trusted by the node. No login: nodes ask before they hold anything but an invite.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ...release import installed_version, required_version
from ..deps import state_of
from .params import API_PREFIX

__all__ = ["ReleaseOut", "WheelOut", "router", "wheel_info"]

router = APIRouter(prefix=API_PREFIX + "/node", tags=["nodes"])

_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


class WheelOut(BaseModel):
    """The wheel a node installs: where to get it and the hash it must have."""

    filename: str
    version: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int
    url: str = Field(description="path on this server")


class ReleaseOut(BaseModel):
    """The server's version, the oldest node version it gives work to, and its wheel."""

    version: str = Field(description="the server's own version")
    required_version: str
    wheel: WheelOut | None = Field(description="absent when the operator offers no wheel")
    constraints_url: str | None = Field(description="pip constraints for a node's install")


def wheel_info(path: Path) -> WheelOut:
    """Filename, version and SHA-256 of ``path`` (hashed once per file content change)."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _LOCK:
        digest = _HASHES.get(key)
        if digest is None:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            digest = _HASHES[key] = h.hexdigest()
    parts = path.name.split("-")
    version = parts[1] if len(parts) >= 5 else ""
    return WheelOut(filename=path.name, version=version, sha256=digest, size=st.st_size,
                    url=f"{API_PREFIX}/node/wheel/{path.name}")  # fmt: skip


def _wheel_path(request: Request) -> Path | None:
    name = state_of(request).settings.node_wheel
    if not name:
        return None
    path = Path(name)
    return path if path.is_file() else None


@router.get("/release", response_model=ReleaseOut)
def release(request: Request) -> ReleaseOut:
    """The version a node must run and the wheel (with its SHA-256) to upgrade from."""
    settings = state_of(request).settings
    path = _wheel_path(request)
    constraints = settings.node_constraints
    return ReleaseOut(
        version=installed_version(),
        required_version=required_version(settings),
        wheel=wheel_info(path) if path else None,
        constraints_url=f"{API_PREFIX}/node/constraints.txt"
        if constraints and Path(constraints).is_file() else None,
    )  # fmt: skip


@router.get(
    "/wheel/{filename}",
    response_class=FileResponse,
    responses={404: {"description": "not the wheel this server offers"}},
)
def wheel(filename: str, request: Request) -> FileResponse:
    """The wheel named in ``/release`` (only that one file is ever served)."""
    path = _wheel_path(request)
    if path is None or filename != path.name:
        raise HTTPException(404, "this server offers no such wheel")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


@router.get(
    "/constraints.txt",
    response_class=FileResponse,
    responses={404: {"description": "the operator offers no constraints file"}},
)
def constraints(request: Request) -> FileResponse:
    """The pip constraints nodes install with, so that every node resolves the same versions."""
    name = state_of(request).settings.node_constraints
    if not name or not Path(name).is_file():
        raise HTTPException(404, "this server offers no constraints file")
    return FileResponse(name, media_type="text/plain")
