"""Everything the Wargaming API client can raise, grouped by what a crawler should do.

::

    WargamingError                     (carries endpoint and account ids)
    ├── TransientError                 retry with backoff
    │   ├── TransportError             timeout, reset, refused, dropped connection
    │   ├── BadResponse                a body that is not the API's JSON
    │   │   └── HttpStatusError        any HTTP status but 200 (the API answers its
    │   │                              own errors with 200: others come from a proxy,
    │   │                              a CDN or a load balancer: 403, 404, 408, 5xx)
    │   └── SourceNotAvailable         504 SOURCE_NOT_AVAILABLE
    ├── RequestLimitExceeded           407 REQUEST_LIMIT_EXCEEDED: slow down, retry
    ├── MethodDisabled                 405 METHOD_DISABLED: retry much later
    ├── KeyUnusable                    INVALID_APPLICATION_ID, APPLICATION_IS_BLOCKED,
    │                                  INVALID_IP_ADDRESS: stop using the key
    └── RequestBug                     the request is wrong: never retry
                                       (list limit, INVALID_*, *_NOT_SPECIFIED,
                                        METHOD_NOT_FOUND, anything unknown)

Misuse of the client itself (e.g. passing 101 ids) raises ``ValueError`` before any
request is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BadResponse",
    "HttpStatusError",
    "KeyUnusable",
    "MethodDisabled",
    "RequestBug",
    "RequestLimitExceeded",
    "SourceNotAvailable",
    "TransientError",
    "TransportError",
    "WargamingError",
    "error_from_envelope",
]


class WargamingError(Exception):
    """Root of the client's errors; says which endpoint and ids it concerned."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        account_ids: Sequence[int] = (),
        code: int | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.account_ids = tuple(account_ids)
        self.code = code
        self.api_message = api_message

    def __str__(self) -> str:
        span = ""
        if self.account_ids:
            span = f" ids {min(self.account_ids)}..{max(self.account_ids)}"
        return f"{self.args[0]} ({self.endpoint}{span})"


class TransientError(WargamingError):
    """A failure that says nothing about the request: the same request may succeed later."""


class TransportError(TransientError):
    """The exchange failed: timeout, connection refused or reset, dropped answer."""


class BadResponse(TransientError):
    """An answer that is not the API's envelope: HTTP 5xx, non-JSON or malformed JSON."""


class HttpStatusError(BadResponse):
    """An HTTP status other than 200: the API itself always answers 200 (its errors are
    in the body), so this is a proxy or load balancer in the way; retried with backoff
    (a wrong URL fails the chunk after the retries, and the reaper's attempts bound it)."""

    def __init__(self, message: str, *, status: int, endpoint: str = "",
                 account_ids: Sequence[int] = ()) -> None:  # fmt: skip
        super().__init__(message, endpoint=endpoint, account_ids=account_ids)
        self.status = status


class SourceNotAvailable(TransientError):
    """504 SOURCE_NOT_AVAILABLE: the API's own upstream is down for a while."""


class RequestLimitExceeded(WargamingError):
    """REQUEST_LIMIT_EXCEEDED: this key went over its requests/s; the request did nothing."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        endpoint: str = "",
        account_ids: Sequence[int] = (),
        code: int | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(
            message, endpoint=endpoint, account_ids=account_ids, code=code, api_message=api_message
        )
        self.retry_after = retry_after


class MethodDisabled(WargamingError):
    """405 METHOD_DISABLED: the endpoint is switched off; try again much later."""


class KeyUnusable(WargamingError):
    """The application id cannot be used from here (invalid, blocked, wrong IP)."""

    def __init__(
        self,
        message: str,
        *,
        app_id: str = "",
        endpoint: str = "",
        account_ids: Sequence[int] = (),
        code: int | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(
            message, endpoint=endpoint, account_ids=account_ids, code=code, api_message=api_message
        )
        self.app_id = app_id


class RequestBug(WargamingError):
    """The API rejected the request itself: retrying cannot help, the code must change."""


_KEY_ERRORS = {"INVALID_APPLICATION_ID", "APPLICATION_IS_BLOCKED", "INVALID_IP_ADDRESS"}


def error_from_envelope(
    error: object, *, endpoint: str, account_ids: Sequence[int], app_id: str = ""
) -> WargamingError:
    """Map the ``error`` object of a ``status: error`` envelope to the right class."""
    if not isinstance(error, dict):
        return BadResponse(
            "status 'error' without an error object", endpoint=endpoint, account_ids=account_ids
        )
    message = str(error.get("message") or "")
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, int) else None
    text = f"API error {code} {message}"
    ids = tuple(account_ids)
    if message == "REQUEST_LIMIT_EXCEEDED":
        return RequestLimitExceeded(
            text, endpoint=endpoint, account_ids=ids, code=code, api_message=message
        )
    if message in _KEY_ERRORS:
        return KeyUnusable(
            text, app_id=app_id, endpoint=endpoint, account_ids=ids, code=code, api_message=message
        )
    cls: type[WargamingError] = {
        "SOURCE_NOT_AVAILABLE": SourceNotAvailable,
        "METHOD_DISABLED": MethodDisabled,
    }.get(message, RequestBug)
    return cls(text, endpoint=endpoint, account_ids=ids, code=code, api_message=message)
