"""Versions of the node software: what is installed, what the server requires, how they compare.

A leaf module (standard library only): the server stamps the version it requires on its
fetch messages and in its release answer, and a node compares it with its own before it
runs anything, so both sides share this one reading of a version string.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Protocol

__all__ = [
    "MIN_VERSION_KEY",
    "VersionError",
    "installed_version",
    "needs_newer",
    "older_than",
    "parse_version",
    "required_version",
]

#: Key of a ``fetch_range`` message naming the oldest node version that may run it.
MIN_VERSION_KEY = "min_version"

_VERSION = re.compile(
    r"v?(?P<release>\d+(?:\.\d+){0,3})"
    r"(?:(?P<pre>a|b|rc)(?P<pre_n>\d+))?"
    r"(?:\.post(?P<post>\d+))?"
    r"(?:\.dev(?P<dev>\d+))?"
)
_PRE_ORDER = {"a": 0, "b": 1, "rc": 2}
_FINAL = 3  # a final release sorts after its pre-releases


class VersionError(ValueError):
    """Not a version: ``X.Y.Z`` with optional ``aN|bN|rcN``, ``.postN``, ``.devN``."""


class _HasRequired(Protocol):
    @property
    def required_node_version(self) -> str: ...


def parse_version(text: str) -> tuple[int, ...]:
    """A sortable tuple: ``"1.2"`` < ``"1.2.1rc1"`` < ``"1.2.1"`` < ``"1.2.1.post1"``."""
    m = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or len(text) > 64:
        raise VersionError(f"{text!r} is not a version (like 1.2.3)")
    release = [int(x) for x in m["release"].split(".")]
    release += [0] * (4 - len(release))
    pre = (_PRE_ORDER[m["pre"]], int(m["pre_n"])) if m["pre"] else (_FINAL, 0)
    post = int(m["post"]) if m["post"] else -1
    # a .dev release sorts before everything else of the same number
    dev = (0, int(m["dev"])) if m["dev"] is not None else (1, 0)
    if m["dev"] is not None and not m["pre"] and m["post"] is None:
        pre = (-1, 0)
    return (*release, *pre, post, *dev)


def older_than(version: str, other: str) -> bool:
    """Whether ``version`` is strictly older than ``other``."""
    return parse_version(version) < parse_version(other)


def installed_version() -> str:
    """The version of battletracker installed in this interpreter's environment."""
    try:
        return metadata.version("battletracker")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        from . import __version__

        return __version__


def needs_newer(message: object, current: str | None = None) -> str | None:
    """The version a fetch message asks for when this node is older than it, else None.

    A missing or unreadable ``min_version`` asks for nothing (the server stamps it; an
    old server does not).
    """
    wanted = message.get(MIN_VERSION_KEY) if isinstance(message, dict) else None
    if not isinstance(wanted, str):
        return None
    try:
        return wanted if older_than(current or installed_version(), wanted) else None
    except VersionError:
        return None


def required_version(settings: _HasRequired) -> str:
    """The oldest node version the server accepts: the setting, else the server's own."""
    return settings.required_node_version or installed_version()
