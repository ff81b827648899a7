"""The web app: JSON API, dashboard pages, logins, ``/metrics`` and ``/healthz``.

``create_app(settings)`` builds it; ``serve_in_thread`` runs it with uvicorn in the
background (the demo, tests); ``battletracker web`` (:data:`.cli.web_command`) serves it.
Names are imported lazily, so that ``battletracker --help`` does not load FastAPI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app as create_app
    from .server import ServerHandle as ServerHandle
    from .server import serve_in_thread as serve_in_thread

__all__ = ["ServerHandle", "create_app", "serve_in_thread"]

_WHERE = {"create_app": ".app", "ServerHandle": ".server", "serve_in_thread": ".server"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
