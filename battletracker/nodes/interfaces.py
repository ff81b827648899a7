"""The node domain's contracts and errors.

Error tree::

    NodeError
    ├── NodeAuthError          unknown node, wrong secret, bad invite (HTTP 401)
    ├── NodeNotAllowed         pending, quarantined or banned node (HTTP 403)
    ├── LeaseError             no such lease, revoked or not this node's (HTTP 409)
    ├── UnknownNode            no node with that id (operator commands; also a KeyError)
    ├── UnknownKey             no pool key with that app id (also a KeyError)
    ├── BrokerAdminError       the broker's management API refused or is unreachable
    └── ResultRejected         a result failed authentication; ``reason`` is a short code
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "REJECTION_REASONS",
    "BrokerAdmin",
    "BrokerAdminError",
    "Lease",
    "LeaseError",
    "NodeAuthError",
    "NodeError",
    "NodeNotAllowed",
    "NodeView",
    "ResultRejected",
    "UnknownKey",
    "UnknownNode",
]


class NodeError(Exception):
    """Base of every error of the node domain."""


class NodeAuthError(NodeError):
    """The caller did not prove it is an enrolled node (or its invite is not valid)."""


class NodeNotAllowed(NodeError):
    """The node is known but may not fetch: pending approval, quarantined or banned."""


class LeaseError(NodeError):
    """The lease named does not exist, was revoked, or belongs to another node."""


class UnknownNode(NodeError, KeyError):
    """No node has that id."""


class UnknownKey(NodeError, KeyError):
    """No key of the pool has that application id."""


class BrokerAdminError(NodeError):
    """The broker's management API could not make or remove a node's user."""


#: Why a result was refused; each is a label of the rejection metric and a table value.
REJECTION_REASONS = (
    "oversized",  # bigger than the size limit, refused before decoding
    "not_store_task",  # a task other than store_results on the results path
    "bad_envelope",  # callbacks, chains, eta, kwargs or other Celery options in the message
    "unsigned",  # no auth member or a malformed one
    "unknown_node",
    "node_not_allowed",  # pending, quarantined or banned
    "bad_lease",  # unknown, revoked, or another node's lease
    "bad_signature",
    "bad_token",  # the dispatch token does not match chunk, span and attempt
    "not_dispatched",  # the chunk is not handed out (pending, stored elsewhere, failed)
    "stale_attempt",  # a token of an earlier attempt
    "invalid",  # authenticated, but the data failed validation
    "spot_check",  # authenticated, but the server's re-fetch disagrees
)


class ResultRejected(NodeError):
    """A result that must not be stored; ``reason`` is one of :data:`REJECTION_REASONS`."""

    def __init__(self, reason: str, detail: str = "", *, node_id: int | None = None,
                 claimed_node: int | None = None, chunk_id: int | None = None,
                 reissue_attempt: int | None = None) -> None:  # fmt: skip
        super().__init__(f"{reason}: {detail}" if detail else reason)
        assert reason in REJECTION_REASONS, reason
        self.reason = reason
        self.detail = detail
        #: the node, only when its signature was valid
        self.node_id = node_id
        self.claimed_node = claimed_node
        self.chunk_id = chunk_id
        #: set when the chunk, handed to this node in that attempt, must go to another
        self.reissue_attempt = reissue_attempt


@dataclass(frozen=True)
class Lease:
    """What a node receives: ``as_json()`` is the ``node lease --json`` shape."""

    node_id: int
    lease_id: int
    broker_url: str
    keys: list[dict[str, Any]]
    expires_at: dt.datetime
    expires_in: float
    renew_in: float
    required_version: str
    signing_key: str = field(repr=False)

    def as_json(self, *, secrets: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node_id": self.node_id,
            "lease_id": self.lease_id,
            "broker_url": self.broker_url,
            "keys": self.keys,
            "expires_at": self.expires_at.isoformat(),
            "expires_in": self.expires_in,
            "renew_in": self.renew_in,
            "required_version": self.required_version,
        }
        if secrets:
            out["signing_key"] = self.signing_key
        return out


@dataclass(frozen=True)
class NodeView:
    """One line of ``nodes list``: identity, state, lease and credit."""

    id: int
    name: str
    state: str
    version: str | None
    last_seen: dt.datetime | None
    keys: list[dict[str, Any]]
    rps: float
    chunks_stored: int
    accounts_stored: int
    rejected_results: int
    trust: float
    spot_checks: int
    spot_failures: int
    note: str | None

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["last_seen"] = self.last_seen.isoformat() if self.last_seen else None
        return out


class BrokerAdmin(Protocol):
    """Makes and removes a node's own broker user (least privilege; see nodes/broker.py)."""

    def ensure_user(self, user: str, password: str) -> None:
        """Create or update ``user`` with the node permissions on the nodes' vhost."""

    def remove_user(self, user: str) -> None:
        """Delete ``user`` and close its open connections (a ban)."""
