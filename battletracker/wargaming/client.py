"""An async client for ``account/info/``: one request, strictly checked, errors classified.

httpx errors are translated into :mod:`battletracker.wargaming.errors` here and nowhere
else, so the pipeline never imports httpx. Tests and the demo pass a ``transport``
(the simulator's ``httpx.MockTransport``) and exercise the same code as production.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from .errors import BadResponse, HttpStatusError, TransportError, error_from_envelope

__all__ = ["ACCOUNT_FIELDS", "MAX_IDS", "AccountInfo", "WargamingClient"]

#: The API's limit of ids per request.
MAX_IDS = 100

#: What the crawler asks for: nothing more (smaller answers, faster parsing).
ACCOUNT_FIELDS: tuple[str, ...] = (
    "account_id",
    "nickname",
    "created_at",
    "last_battle_time",
    "statistics.all",
)

#: ``{account_id: account object or None}`` for every id asked.
AccountInfo = dict[int, dict[str, Any] | None]


def _on_wire(
    on_send: Callable[[], None] | None,
    before_send: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """httpcore's trace hook, reduced to "the headers go out now" (``before_send``, awaited
    with the connection ready) and "the whole request went out just now" (``on_send``:
    after the body, written separately, so no part of it reaches the API later)."""
    if on_send is None and before_send is None:
        return {}

    async def trace(event: str, info: dict[str, Any]) -> None:
        if before_send is not None and event.endswith("send_request_headers.started"):
            await before_send()
        elif on_send is not None and event.endswith("send_request_body.complete"):
            on_send()

    return {"trace": trace}


class WargamingClient:
    """Calls ``{base_url}account/info/`` with one application id."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
    ) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.app_id = app_id
        self.endpoint = base_url + "account/info/"
        #: ``before_send`` is honoured (httpcore's trace); a custom transport may not call it
        self.gates_at_wire = transport is None
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": "battletracker"},
        )
        # Requests beyond the pool's connections wait here, not in httpcore's queue:
        # its pool scans every queued request against every connection (and asks each
        # idle socket whether it is readable) each time a request starts or ends, which
        # at a few thousand requests a second cost more CPU than the requests themselves.
        self._max_connections = max_connections
        self._in_flight = max_connections
        self._slots = asyncio.Semaphore(max_connections)

    def limit_in_flight(self, requests: int) -> None:
        """Keep at most ``requests`` (1..max_connections) requests of this client in flight.

        Fewer connections cost less CPU per request (see above); requests already in flight
        finish under the limit they started with.
        """
        requests = max(1, min(requests, self._max_connections))
        if requests != self._in_flight:
            self._in_flight = requests
            self._slots = asyncio.Semaphore(requests)

    async def __aenter__(self) -> WargamingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def account_info(
        self,
        account_ids: Sequence[int],
        fields: Sequence[str] = ACCOUNT_FIELDS,
        *,
        on_send: Callable[[], None] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> AccountInfo:
        """Fetch up to 100 accounts; every id asked is in the answer (None: no account).

        ``on_send`` is called once the request (headers and body) is on the wire (after any
        connection set-up and queueing), so a rate limiter can count it when the API will;
        ``before_send`` is awaited just before they are written (see ``gates_at_wire``).
        """
        ids = list(dict.fromkeys(account_ids))
        if not ids or len(ids) > MAX_IDS:
            raise ValueError(f"account_info takes 1..{MAX_IDS} ids, got {len(ids)}")
        params = {
            "application_id": self.app_id,
            "account_id": ",".join(str(i) for i in ids),
            "fields": ",".join(fields),
        }
        try:
            async with self._slots:
                response = await self._http.post(
                    self.endpoint, data=params, extensions=_on_wire(on_send, before_send)
                )
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"timeout: {type(exc).__name__}", endpoint=self.endpoint, account_ids=ids
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                f"transport failure: {type(exc).__name__}: {exc}",
                endpoint=self.endpoint,
                account_ids=ids,
            ) from exc
        return self._parse(response, ids)

    def _parse(self, response: httpx.Response, ids: list[int]) -> AccountInfo:
        def bad(message: str) -> BadResponse:
            return BadResponse(message, endpoint=self.endpoint, account_ids=ids)

        if response.status_code != 200:
            # the API answers its own errors with 200; anything else is a proxy's
            raise HttpStatusError(
                f"HTTP {response.status_code}", status=response.status_code,
                endpoint=self.endpoint, account_ids=ids,
            )  # fmt: skip
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise bad("answer is not JSON") from exc
        if not isinstance(body, dict):
            raise bad("answer is not a JSON object")
        status = body.get("status")
        if status == "error":
            raise error_from_envelope(
                body.get("error"), endpoint=self.endpoint, account_ids=ids, app_id=self.app_id
            )
        data = body.get("data")
        if status != "ok" or not isinstance(data, dict):
            raise bad("envelope without status 'ok' and data")
        out: AccountInfo = {}
        for account_id in ids:
            key = str(account_id)
            if key not in data:
                raise bad(f"id {account_id} missing from data")
            value = data[key]
            if value is not None and not isinstance(value, dict):
                raise bad(f"id {account_id}: not an object")
            out[account_id] = value
        return out
