"""Enrol this machine as a node: ask the server, keep the identity it returns."""

from __future__ import annotations

from pathlib import Path

from .api import ServerApi
from .identity import Identity, save_identity

__all__ = ["register"]


def register(server: str, directory: Path, *, invite: str | None, name: str | None,
             api: ServerApi | None = None) -> tuple[Identity, str]:  # fmt: skip
    """Register at ``server``; returns the identity (saved owner-only) and the node's state."""
    own = api is None
    api = api or ServerApi(server)
    try:
        out = api.register(invite, name)
    finally:
        if own:
            api.close()
    identity = Identity(server.rstrip("/"), int(out["node_id"]), str(out["secret"]))
    save_identity(directory, identity)
    return identity, str(out["state"])
