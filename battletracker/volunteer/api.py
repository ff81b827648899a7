"""The node's client of the server's HTTP API (register, lease, key reports)."""

from __future__ import annotations

from typing import Any

import httpx

from .. import __version__
from .identity import Identity

__all__ = ["ServerApi", "ServerError"]


class ServerError(RuntimeError):
    """The server refused (``status``) or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ServerApi:
    """Calls ``/api/v1/nodes/*`` of ``server``; ``identity`` signs in where needed."""

    def __init__(
        self, server: str, identity: Identity | None = None, *, timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:  # fmt: skip
        headers = {"X-Node-Version": __version__}
        if identity is not None:
            headers["Authorization"] = identity.authorization
        base = server.rstrip("/") + "/api/v1/nodes/"
        self._client = httpx.Client(
            base_url=base, headers=headers, timeout=timeout, transport=transport
        )

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ServerError(f"server unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            raise ServerError(f"server said {response.status_code}: {detail}",
                              response.status_code)  # fmt: skip
        return response.json() if response.content else None

    def register(self, invite: str | None, name: str | None) -> dict[str, Any]:
        out: dict[str, Any] = self._post("register", {"invite": invite, "name": name,
                                                      "version": __version__})  # fmt: skip
        return out

    def lease(self, renew: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self._post("lease", {"lease_id": renew, "version": __version__})
        return out

    def key_report(self, app_id: str, reason: str) -> None:
        # one line of printable text: the server refuses control characters
        line = "".join(ch if ch.isprintable() else " " for ch in reason)
        self._post("key-report", {"app_id": app_id, "reason": line[:200]})

    def close(self) -> None:
        self._client.close()
