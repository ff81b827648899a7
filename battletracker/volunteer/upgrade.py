"""A node updates itself: the server's wheel, checked against its announced SHA-256, restarted.

Only the hash in the server's release answer is trusted: the wheel is streamed to a
temporary file while it is hashed, and a wheel whose hash differs is deleted and never
installed (the node keeps running what it has and says why). Installation goes into the
node's own environment (``sys.executable -m pip``), never elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from ..release import VersionError, installed_version, older_than, parse_version

__all__ = [
    "NoUsableWheel",
    "Release",
    "UpgradeError",
    "UpgradeFailed",
    "WheelInfo",
    "WheelRefused",
    "download_wheel",
    "fetch_release",
    "install_wheel",
    "plan_upgrade",
    "restart_self",
    "upgrade_if_needed",
]

log = logging.getLogger(__name__)

#: A wheel bigger than this is refused while downloading (the real one is well under 1 MB).
MAX_WHEEL_BYTES = 50 * 1024 * 1024


class UpgradeError(Exception):
    """The node could not update itself; it keeps running the version it has."""


class WheelRefused(UpgradeError):
    """The downloaded wheel is not the one the server announced (hash, size or name)."""


class NoUsableWheel(UpgradeError):
    """The server needs a newer node but offers no wheel of at least that version."""


class UpgradeFailed(UpgradeError):
    """pip could not install the wheel, or the install did not give the new version."""


@dataclass(frozen=True)
class WheelInfo:
    """The wheel as announced: name, version, SHA-256, size and where to download it."""

    filename: str
    version: str
    sha256: str
    size: int
    url: str


@dataclass(frozen=True)
class Release:
    """The server's answer at ``/api/v1/node/release``."""

    version: str
    required_version: str
    wheel: WheelInfo | None
    constraints_url: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Release:
        """Parse and check the answer (it comes over the network: anything may be in it)."""
        if not isinstance(raw, dict):
            raise UpgradeError("the server's release answer is not a JSON object")
        try:
            required = str(raw["required_version"])
            parse_version(required)
            wheel = None
            w = raw.get("wheel")
            if w is not None:
                sha = str(w["sha256"]).lower()
                if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                    raise UpgradeError("the server announced a malformed SHA-256")
                wheel = WheelInfo(str(w["filename"]), str(w["version"]), sha, int(w["size"]),
                                  str(w["url"]))  # fmt: skip
                parse_version(wheel.version)
            constraints = raw.get("constraints_url")
            return cls(str(raw.get("version", "")), required, wheel,
                       str(constraints) if constraints else None)  # fmt: skip
        except (KeyError, TypeError, ValueError, VersionError) as exc:
            raise UpgradeError(f"the server's release answer is malformed: {exc}") from None


def fetch_release(client: httpx.Client, server: str) -> Release:
    """Ask ``server`` which version it requires and which wheel it offers."""
    url = urljoin(server.rstrip("/") + "/", "api/v1/node/release")
    try:
        response = client.get(url)
        response.raise_for_status()
        return Release.from_json(response.json())
    except httpx.HTTPError as exc:
        raise UpgradeError(f"cannot ask the server for its version ({url}): {exc}") from exc
    except ValueError as exc:
        raise UpgradeError(f"the server's release answer is not JSON: {exc}") from exc


def plan_upgrade(release: Release, current: str | None = None) -> WheelInfo | None:
    """The wheel to install, or None when ``current`` is recent enough.

    Raises :class:`NoUsableWheel` when the node is too old and the server offers nothing
    newer (installing an older wheel would be a loop, not an upgrade).
    """
    current = current or installed_version()
    if not older_than(current, release.required_version):
        return None
    wheel = release.wheel
    if wheel is None or older_than(wheel.version, release.required_version):
        raise NoUsableWheel(
            f"this node runs {current}, the server needs {release.required_version} and offers "
            "no wheel of that version: ask the operator, or reinstall from the package index"
        )
    return wheel


def download_wheel(client: httpx.Client, server: str, wheel: WheelInfo, dest: Path) -> Path:
    """Stream ``wheel`` into ``dest`` while hashing it; refuse it unless the hash matches."""
    name = Path(wheel.filename).name
    if name != wheel.filename or not name.endswith(".whl") or not name.startswith("battletracker-"):
        raise WheelRefused(f"the server announced a strange wheel name {wheel.filename!r}")
    url = urljoin(server.rstrip("/") + "/", wheel.url.lstrip("/"))
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, client.stream("GET", url) as response:
            response.raise_for_status()
            for block in response.iter_bytes(1 << 16):
                size += len(block)
                if size > MAX_WHEEL_BYTES:
                    raise WheelRefused(f"the wheel is larger than {MAX_WHEEL_BYTES} bytes")
                digest.update(block)
                out.write(block)
        got = digest.hexdigest()
        if got != wheel.sha256:
            raise WheelRefused(
                f"the wheel's SHA-256 is {got}, the server announced {wheel.sha256}: "
                "it was changed on the way or on the server, so it is not installed"
            )
        final = dest / name
        tmp.replace(final)
        return final
    except httpx.HTTPError as exc:
        raise UpgradeError(f"cannot download the wheel ({url}): {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def install_wheel(path: Path, expected_version: str, *, constraints: Path | None = None,
                  python: str = sys.executable) -> None:  # fmt: skip
    """Install ``path`` into this node's environment and check that it took."""
    cmd = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(path)]
    if constraints is not None:
        cmd += ["--constraint", str(constraints)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise UpgradeFailed(f"pip could not install {path.name}:\n{done.stderr[-2000:]}")
    code = "from importlib.metadata import version; print(version('battletracker'))"
    probe = subprocess.run(
        # -I: the current directory (a checkout's egg-info, say) must not answer for the venv
        [python, "-I", "-c", code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    now = probe.stdout.strip()
    if now != expected_version:
        raise UpgradeFailed(f"after installing {path.name} the node reports version {now!r}")


def restart_self(argv: Sequence[str]) -> None:
    """Replace this process with a fresh ``battletracker`` running ``argv`` (the new code).

    POSIX replaces the process in place (same pid: the service manager sees no exit);
    Windows has no such call, so the new process runs as a child and its exit code is ours.
    """
    cmd = [sys.executable, "-I", "-m", "battletracker", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # pragma: no cover - Windows
        sys.exit(subprocess.call(cmd))
    os.execv(sys.executable, cmd)


def upgrade_if_needed(
    client: httpx.Client,
    server: str,
    directory: Path,
    stop_worker: Callable[[], None],
    argv: Sequence[str],
) -> str | None:
    """Upgrade from the server's wheel and restart when this node is too old.

    Returns None when nothing was needed, or why the node keeps running its version
    (the download and hash check happen while the worker still runs; it is stopped only
    for the install). On success this process is replaced and the call never returns.
    """
    try:
        release = fetch_release(client, server)
        wheel = plan_upgrade(release)
        if wheel is None:
            return None
        log.warning("this node runs %s, the server needs %s: upgrading to %s from the server",
                    installed_version(), release.required_version, wheel.version)  # fmt: skip
        wheels = directory / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        path = download_wheel(client, server, wheel, wheels)
        constraints = None
        if release.constraints_url:
            constraints = wheels / "constraints.txt"
            response = client.get(
                urljoin(server.rstrip("/") + "/", release.constraints_url.lstrip("/"))
            )
            response.raise_for_status()
            constraints.write_bytes(response.content)
        stop_worker()
        install_wheel(path, wheel.version, constraints=constraints)
    except (UpgradeError, httpx.HTTPError) as exc:
        why = f"not upgraded, keeps running battletracker {installed_version()}: {exc}"
        log.error("%s", why)
        return why
    log.warning("installed battletracker %s: restarting", wheel.version)
    restart_self(argv)
    return None  # pragma: no cover - restart_self does not return
