"""Answers before they meet a transport, and the API's JSON envelopes.

A :class:`Reply` is plain data so that the same answer can become an ``httpx.Response``
in-process or bytes on a socket, and so that "drop the connection" and "answer late" are
values the transports act on rather than side effects of the handler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["JSON_HEADERS", "Reply", "api_error", "json_reply", "key_error", "to_response"]

JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json; charset=utf-8"),)

#: Key errors that name the ``application_id`` parameter (the others are about the key's
#: state or the caller's address, not about the parameter's value).
_KEY_FIELD_ERRORS = frozenset({"APPLICATION_ID_NOT_SPECIFIED", "INVALID_APPLICATION_ID"})


@dataclass(frozen=True)
class Reply:
    """One answer: ``drop`` means close the connection without answering after ``delay`` s."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS
    drop: bool = False
    delay: float = 0.0


def json_reply(payload: Any, status: int = 200, *, delay: float = 0.0) -> Reply:
    """A compact JSON reply."""
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode(), delay=delay)


def api_error(message: str, code: int, field: str | None = None, value: Any = None) -> Reply:
    """The API's error envelope, which always travels with HTTP 200."""
    error = {"field": field, "message": message, "code": code, "value": value}
    return json_reply({"status": "error", "error": error})


def key_error(message: str) -> Reply:
    """The error for an unusable ``application_id`` (see ``Simulator.check_key``)."""
    code = 402 if message == "APPLICATION_ID_NOT_SPECIFIED" else 407
    field = "application_id" if message in _KEY_FIELD_ERRORS else None
    return api_error(message, code, field)


def to_response(reply: Reply, request: httpx.Request) -> httpx.Response:
    """The httpx form of a reply; a dropped connection raises what httpx itself would."""
    if reply.drop:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request)
    return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body,
                          request=request)
