"""Least privilege on the broker: one RabbitMQ user per node, made through the management API.

Why the management HTTP API: in docker-compose RabbitMQ runs in its own container, so
the server has no ``rabbitmqctl``; the HTTP auth backend would put the web app on the
broker's login path (a web outage would stop the night). The management plugin is on
in the ``rabbitmq:*-management`` images and enabled here with
``rabbitmq-plugins enable rabbitmq_management``.

A node's user has, on the pipeline's vhost only (RabbitMQ matches the regexes on queue
and exchange names):

- configure ``^$``: it declares nothing (the node's Celery app uses ``no_declare``),
- write ``^bt\\.results$``: the results exchange, bound to the ``store`` queue only,
- read ``^fetch$``: it consumes ``fetch``; it cannot read ``store`` or ``control``, and
  cannot publish to ``battletracker`` (so not to ``control``) nor to ``celery.pidbox``
  (so not the server worker's remote control).

A ban deletes the user and closes its connections: its access ends at once.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from .interfaces import BrokerAdminError

__all__ = [
    "NODE_PERMISSIONS",
    "RESULTS_EXCHANGE",
    "ManagementApiAdmin",
    "NoBrokerAdmin",
    "node_broker_url",
    "vhost_of",
]

log = logging.getLogger(__name__)

#: The exchange nodes publish results to; only the ``store`` queue is bound to it.
RESULTS_EXCHANGE = "bt.results"
NODE_PERMISSIONS = {"configure": "^$", "write": r"^bt\.results$", "read": "^fetch$"}


def vhost_of(amqp_url: str) -> str:
    """The vhost an ``amqp://`` URL names (``/`` when none)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def node_broker_url(base: str, user: str, password: str) -> str:
    """``base`` (``amqp[s]://host:port/vhost``, credentials ignored) with the node's own."""
    parts = urlsplit(base)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class ManagementApiAdmin:
    """:class:`~battletracker.nodes.interfaces.BrokerAdmin` over RabbitMQ's HTTP API."""

    def __init__(self, api_url: str, vhost: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:  # fmt: skip
        parts = urlsplit(api_url)
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        netloc = parts.hostname or "127.0.0.1"
        if parts.port:
            netloc += f":{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/api/", "", ""))
        self.vhost = vhost
        self._client = httpx.Client(base_url=base, auth=auth, timeout=timeout,
                                    transport=transport)  # fmt: skip

    def _call(self, method: str, path: str, json: object = None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise BrokerAdminError(f"broker management API unreachable: {exc}") from exc
        if response.status_code >= 400 and response.status_code != 404:
            raise BrokerAdminError(
                f"broker management API: {method} {path} -> {response.status_code} "
                f"{response.text[:200]}"
            )
        return response

    def ensure_user(self, user: str, password: str) -> None:
        u, v = quote(user, safe=""), quote(self.vhost, safe="")
        self._call("PUT", f"users/{u}", {"password": password, "tags": ""})
        self._call("PUT", f"permissions/{v}/{u}", NODE_PERMISSIONS)
        # topic permissions do not matter on direct exchanges; none are granted

    def remove_user(self, user: str) -> None:
        u = quote(user, safe="")
        self._call("DELETE", f"users/{u}")
        response = self._call("GET", "connections?columns=name,user")
        if response.status_code == 404:
            return
        for conn in response.json():
            if conn.get("user") == user:
                name = quote(conn["name"], safe="")
                self._call("DELETE", f"connections/{name}",)
                log.warning("closed broker connection %s of banned user %s", conn["name"], user)

    def close(self) -> None:
        self._client.close()


class NoBrokerAdmin:
    """No management API configured: nodes get ``node_broker_url`` as it is.

    Only for a closed setup (the operator's own machines): every node then shares one
    broker user, and the broker is no boundary between them.
    """

    def ensure_user(self, user: str, password: str) -> None:
        log.warning("broker_admin_url is not set: node user %s not provisioned", user)

    def remove_user(self, user: str) -> None:
        log.warning("broker_admin_url is not set: cannot remove broker user %s", user)
