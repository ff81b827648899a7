"""A node's identity on disk: server URL, node id and secret, readable by its owner only."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import click

__all__ = ["Identity", "IdentityError", "default_dir", "load_identity", "save_identity",
           "write_private"]  # fmt: skip

IDENTITY_FILE = "identity.json"


class IdentityError(RuntimeError):
    """No identity in the directory (run ``battletracker node register``) or a bad file."""


@dataclass(frozen=True)
class Identity:
    server: str
    node_id: int
    secret: str

    def __repr__(self) -> str:
        return f"Identity(server={self.server!r}, node_id={self.node_id}, secret='***')"

    @property
    def authorization(self) -> str:
        return f"Bearer {self.node_id}.{self.secret}"


def default_dir() -> Path:
    """The user's config directory for battletracker's node files."""
    return Path(click.get_app_dir("battletracker")) / "node"


def write_private(path: Path, data: dict[str, object]) -> None:
    """Write JSON readable and writable by the owner only, replacing atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.chmod(tmp, 0o600)  # an existing file keeps its mode on O_CREAT
    os.replace(tmp, path)


def save_identity(directory: Path, identity: Identity) -> Path:
    path = directory / IDENTITY_FILE
    write_private(path, {"server": identity.server, "node_id": identity.node_id,
                         "secret": identity.secret})  # fmt: skip
    return path


def load_identity(directory: Path) -> Identity:
    path = directory / IDENTITY_FILE
    try:
        data = json.loads(path.read_text())
        return Identity(str(data["server"]), int(data["node_id"]), str(data["secret"]))
    except FileNotFoundError:
        raise IdentityError(f"no identity in {directory}: run 'battletracker node register'"
                            ) from None  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise IdentityError(f"{path} is damaged: {exc}") from None
