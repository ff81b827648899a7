"""Node services: enrolment, approval, bans, the key pool, leases and key reports.

Every service gets its dependencies through the constructor (a session in an open
transaction, the broker admin, the config) and never commits: the caller owns the
transaction. :func:`node_service` builds one from settings.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.orm import Session

from .. import __version__
from ..settings import Settings
from ..signing import derive_key, hash_secret, new_secret
from . import metrics
from .broker import ManagementApiAdmin, NoBrokerAdmin, node_broker_url, vhost_of
from .interfaces import (
    BrokerAdmin,
    Lease,
    LeaseError,
    NodeAuthError,
    NodeNotAllowed,
    NodeView,
    UnknownKey,
    UnknownNode,
)
from .models import (
    ApiKeyRow,
    KeyReport,
    KeyState,
    LeaseShare,
    Node,
    NodeInvite,
    NodeLease,
    NodeState,
)

__all__ = [
    "SHARE_HOLD", "KeyPool", "NodeConfig", "NodeService", "broker_admin_for", "node_config",
    "node_service",
]  # fmt: skip

log = logging.getLogger(__name__)

#: A share below this is not worth a key slot: the node gets no part of that key now.
MIN_SHARE_RPS = 0.2
#: How long budget a lease gave up (a lowered share, an expired lease) stays counted
#: against the key: the API counts the last second's requests (a sliding window), and
#: the node needs a moment to read its new share; only then may another node take it.
SHARE_HOLD = dt.timedelta(seconds=2)
INVITE_TTL = dt.timedelta(days=7)
_NAME = re.compile(r"[\w .@-]{1,64}")


@dataclass(frozen=True)
class NodeConfig:
    """What the services need of the settings."""

    lease_seconds: int
    required_version: str
    broker_base_url: str
    user_prefix: str
    #: server-only key material the broker passwords derive from
    master_key: str
    #: True when each node gets its own broker user (a management API is configured)
    per_node_users: bool


def node_config(settings: Settings) -> NodeConfig:
    base = settings.node_broker_url or settings.broker_url
    return NodeConfig(
        lease_seconds=settings.lease_seconds,
        required_version=settings.required_node_version or __version__,
        broker_base_url=base,
        user_prefix=settings.node_user_prefix,
        master_key=settings.secret_key,
        per_node_users=bool(settings.broker_admin_url),
    )


def broker_admin_for(settings: Settings) -> BrokerAdmin:
    if not settings.broker_admin_url:
        return NoBrokerAdmin()
    base = settings.node_broker_url or settings.broker_url
    return ManagementApiAdmin(settings.broker_admin_url, vhost_of(base))


def _name(value: str | None, fallback: str) -> str:
    name = (value or "").strip() or fallback
    if not _NAME.fullmatch(name):
        raise NodeAuthError("name: 1-64 letters, digits, spaces and . @ - _")
    return name


class NodeService:
    """Everything the operator and the nodes' HTTP API do to nodes and leases."""

    def __init__(self, session: Session, *, config: NodeConfig, broker: BrokerAdmin) -> None:
        self.session = session
        self.config = config
        self.broker = broker

    def _now(self) -> dt.datetime:
        """The database's clock at this moment (not the transaction's start, which a wait
        for a lock leaves behind)."""
        now: dt.datetime = self.session.execute(select(func.clock_timestamp())).scalar_one()
        return now

    # -- enrolment -----------------------------------------------------------------------

    def invite(self, name: str | None = None, ttl: dt.timedelta = INVITE_TTL) -> str:
        """A one-time invite code (only its hash is kept)."""
        code = new_secret()
        self.session.add(NodeInvite(code_hash=hash_secret(code), expires_at=self._now() + ttl,
                                    name=_name(name, "node") if name else None))  # fmt: skip
        return code

    def register(self, *, invite: str | None, name: str | None, version: str | None
                 ) -> tuple[Node, str]:  # fmt: skip
        """Enrol a node; with a valid invite it is approved at once, else it waits."""
        row = None
        if invite:
            row = self.session.execute(
                select(NodeInvite).where(NodeInvite.code_hash == hash_secret(invite))
                .with_for_update()
            ).scalar_one_or_none()
            if row is None or row.used_at is not None or row.expires_at <= self._now():
                raise NodeAuthError("invite code unknown, used or expired")
        secret = new_secret()
        node = Node(
            name=_name(name or (row.name if row else None), "node"),
            state=NodeState.approved if row else NodeState.pending,
            secret_hash=hash_secret(secret), version=(version or "")[:32] or None, trust=1.0,
            chunks_stored=0, accounts_stored=0, rejected_results=0, spot_checks=0,
            spot_failures=0, last_seen=self._now(),
        )  # fmt: skip
        self.session.add(node)
        self.session.flush()
        if row is not None:
            row.used_at = self._now()
            row.node_id = node.id
        log.info("node %s (%s) registered: %s", node.id, node.name, node.state.value)
        return node, secret

    def authenticate(self, node_id: int, secret: str, version: str | None = None) -> Node:
        """The node that proves ``secret``; refreshes its last-seen time and version."""
        node = self.session.get(Node, node_id, with_for_update=True)
        if node is None or not secrets.compare_digest(node.secret_hash, hash_secret(secret)):
            raise NodeAuthError("unknown node or wrong secret")
        node.last_seen = self._now()
        if version:
            node.version = version[:32]
        return node

    def _node(self, node_id: int) -> Node:
        node = self.session.get(Node, node_id, with_for_update=True)
        if node is None:
            raise UnknownNode(f"no node {node_id}")
        return node

    def approve(self, node_id: int) -> Node:
        """Let a pending, quarantined or banned node fetch again."""
        node = self._node(node_id)
        node.state = NodeState.approved
        node.note = None
        if node.trust < 0.5:
            node.trust = 0.5
        return node

    def ban(self, node_id: int, reason: str = "banned by the operator") -> Node:
        """At once: leases revoked (results refused), broker user and connections gone."""
        node = self._node(node_id)
        node.state = NodeState.banned
        node.note = reason[:500]
        self.revoke_leases(node.id)
        self.broker.remove_user(self.broker_user(node.id))
        log.warning("node %s (%s) banned: %s", node.id, node.name, reason)
        return node

    def quarantine(self, node_id: int, reason: str) -> Node:
        """Spot checks disagree: results refused until the operator approves the node again."""
        node = self._node(node_id)
        if node.state == NodeState.approved:
            node.state = NodeState.quarantined
        node.note = reason[:500]
        self.revoke_leases(node.id)
        self.broker.remove_user(self.broker_user(node.id))
        log.error("node %s (%s) quarantined: %s", node.id, node.name, reason)
        return node

    def revoke_leases(self, node_id: int) -> None:
        self.session.execute(
            update(NodeLease)
            .where(NodeLease.node_id == node_id, NodeLease.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )

    # -- listing -------------------------------------------------------------------------

    def list_nodes(self) -> list[NodeView]:
        now = self._now()
        shares: dict[int, list[dict[str, object]]] = {}
        live = (
            select(NodeLease.node_id, ApiKeyRow.app_id, LeaseShare.rps)
            .join(LeaseShare, LeaseShare.lease_id == NodeLease.id)
            .join(ApiKeyRow, ApiKeyRow.id == LeaseShare.api_key_id)
            .where(NodeLease.revoked_at.is_(None), NodeLease.expires_at > now)
        )
        for node_id, app_id, rps in self.session.execute(live):
            shares.setdefault(node_id, []).append({"app_id": _hint(app_id), "rps": round(rps, 3)})
        out = []
        for n in self.session.execute(select(Node).order_by(Node.id)).scalars():
            keys = shares.get(n.id, [])
            out.append(NodeView(
                id=n.id, name=n.name, state=n.state.value, version=n.version,
                last_seen=n.last_seen, keys=keys, rps=_total(keys),
                chunks_stored=n.chunks_stored, accounts_stored=n.accounts_stored,
                rejected_results=n.rejected_results, trust=round(n.trust, 3),
                spot_checks=n.spot_checks, spot_failures=n.spot_failures, note=n.note,
            ))  # fmt: skip
        return out

    # -- leases --------------------------------------------------------------------------

    def broker_user(self, node_id: int) -> str:
        return f"{self.config.user_prefix}{node_id}"

    def _broker_url(self, node: Node) -> str:
        if not self.config.per_node_users:
            return self.config.broker_base_url
        user = self.broker_user(node.id)
        password = derive_key(self.config.master_key, f"broker:{user}").hex()
        self.broker.ensure_user(user, password)
        return node_broker_url(self.config.broker_base_url, user, password)

    def lease(self, node: Node, *, renew: int | None = None) -> Lease:
        """A new lease (or ``renew`` one the node holds) with this node's fair shares."""
        if node.state != NodeState.approved:
            raise NodeNotAllowed(f"node {node.id} is {node.state.value}")
        now = self._now()
        expires = now + dt.timedelta(seconds=self.config.lease_seconds)
        row: NodeLease | None = None
        if renew is not None:
            row = self.session.get(NodeLease, renew, with_for_update=True)
            if row is None or row.node_id != node.id or row.revoked_at is not None:
                raise LeaseError(f"lease {renew} is not a live lease of node {node.id}")
            row.renewed_at = now
            row.expires_at = expires
        else:
            self.revoke_leases(node.id)
            row = NodeLease(node_id=node.id, signing_key=secrets.token_hex(32),
                            expires_at=expires, issued_at=now, renewed_at=now)  # fmt: skip
            self.session.add(row)
            self.session.flush()
        broker_url = self._broker_url(node)  # (RabbitMQ's API: before the keys are locked)
        keys = self._share_keys(row)
        return Lease(
            node_id=node.id, lease_id=row.id, broker_url=broker_url, keys=keys,
            expires_at=expires, expires_in=float(self.config.lease_seconds),
            renew_in=self.config.lease_seconds / 3, required_version=self.config.required_version,
            signing_key=row.signing_key,
        )  # fmt: skip

    def _share_keys(self, lease: NodeLease) -> list[dict[str, object]]:
        """Give ``lease`` its share of every active key, never above what is unallocated.

        The key rows are locked (in id order: no deadlock between two renewals), so two
        nodes renewing at once cannot both take the same unallocated budget. A newcomer
        gets at most what is free now; the others shrink to the fair share when they
        renew, and the newcomer grows into it at its next renewal.

        Budget given up stays taken for :data:`SHARE_HOLD`: the part of a share lowered
        at this renewal (``held_rps``), and the shares of a lease that expired, so that
        the requests its node sent in the last second have left the API's window before
        another node may spend the same budget.
        """
        before: dict[int, _Was] = {
            key_id: (rps, held_rps, held_until)
            for key_id, rps, held_rps, held_until in self.session.execute(
                delete(LeaseShare).where(LeaseShare.lease_id == lease.id)
                .returning(LeaseShare.api_key_id, LeaseShare.rps, LeaseShare.held_rps,
                           LeaseShare.held_until)
            )
        }  # fmt: skip
        keys = self.session.execute(
            select(ApiKeyRow).where(ApiKeyRow.state == KeyState.active)
            .order_by(ApiKeyRow.id).with_for_update()
        ).scalars().all()  # fmt: skip
        now = self._now()  # after the wait for the lock: holds count from the decision
        out: list[dict[str, object]] = []
        others = (NodeLease.id != lease.id, NodeLease.revoked_at.is_(None))
        # every live lease wants a share of every key, held or not yet
        live = self.session.execute(
            select(func.count()).where(*others, NodeLease.expires_at > now)
        ).scalar_one()
        held = case((LeaseShare.held_until > now, LeaseShare.held_rps), else_=0.0)
        taken: dict[int, float] = {
            key_id: float(rps)
            for key_id, rps in self.session.execute(
                select(LeaseShare.api_key_id, func.sum(LeaseShare.rps + held))
                .join(NodeLease, NodeLease.id == LeaseShare.lease_id)
                .where(*others, NodeLease.expires_at > now - SHARE_HOLD)
                .group_by(LeaseShare.api_key_id)
            )
        }  # fmt: skip
        for key in keys:
            share = min(key.rps / (live + 1), key.rps - taken.get(key.id, 0.0))
            share = int(share * 1000) / 1000  # round down: the sum never exceeds the budget
            if share < MIN_SHARE_RPS:
                continue  # (a share lost entirely is not held: a hundred nodes on one key)
            row = LeaseShare(lease_id=lease.id, api_key_id=key.id, rps=share)
            _hold(row, before.get(key.id), now)
            self.session.add(row)
            out.append({"app_id": key.app_id, "rps": share})
        return out

    def report_key(self, node: Node, app_id: str, reason: str) -> None:
        """A node says ``app_id`` is unusable: recorded, counted, shown to the operator."""
        key_id = self.session.execute(
            select(ApiKeyRow.id).where(ApiKeyRow.app_id == app_id)
        ).scalar_one_or_none()
        self.session.add(KeyReport(node_id=node.id, api_key_id=key_id, reason=reason[:200]))
        metrics.KEY_REPORTS.labels("pool" if key_id else "own").inc()
        log.critical("node %s (%s): API key %s unusable: %s", node.id, node.name,
                     _hint(app_id), reason[:200].replace("\n", " "))  # fmt: skip


#: A lease's share of a key before its renewal: (rps, held_rps, held_until).
_Was = tuple[float, float, "dt.datetime | None"]


def _hold(row: LeaseShare, before: _Was | None, now: dt.datetime) -> None:
    """Carry a renewed share's hold over: what it gave up now, and an earlier hold that
    has not run out (held until the later of the two, the safe side)."""
    if before is None:
        return
    rps, held_rps, held_until = before
    kept = held_rps if held_until is not None and held_until > now else 0.0
    given_up = max(0.0, rps - row.rps)
    if given_up:
        row.held_rps, row.held_until = given_up + kept, now + SHARE_HOLD
    elif kept:
        row.held_rps, row.held_until = kept, held_until


class KeyPool:
    """The operator's application ids and their budgets."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, app_id: str, rps: float) -> ApiKeyRow:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", app_id) or not 0 < rps <= 1000:
            raise ValueError("a key is an application id (letters, digits, - _), 0 < rps <= 1000")
        row = self.session.execute(
            select(ApiKeyRow).where(ApiKeyRow.app_id == app_id)
        ).scalar_one_or_none()
        if row is None:
            row = ApiKeyRow(app_id=app_id, rps=rps, state=KeyState.active)
            self.session.add(row)
        else:
            row.rps, row.state = rps, KeyState.active
        self.session.flush()
        return row

    def disable(self, app_id: str) -> ApiKeyRow:
        """No new lease or renewal includes it: every node stops within one lease period."""
        row = self.session.execute(
            select(ApiKeyRow).where(ApiKeyRow.app_id == app_id).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise UnknownKey(app_id)
        row.state = KeyState.disabled
        return row

    def list(self) -> Sequence[dict[str, object]]:
        reports = dict(self.session.execute(
            select(KeyReport.api_key_id, func.count()).group_by(KeyReport.api_key_id)
        ).all())  # fmt: skip
        now = self.session.execute(select(func.now())).scalar_one()
        leased = dict(self.session.execute(
            select(LeaseShare.api_key_id, func.sum(LeaseShare.rps))
            .join(NodeLease, NodeLease.id == LeaseShare.lease_id)
            .where(NodeLease.revoked_at.is_(None), NodeLease.expires_at > now)
            .group_by(LeaseShare.api_key_id)
        ).all())  # fmt: skip
        return [
            {"app_id": k.app_id, "rps": k.rps, "state": k.state.value,
             "leased_rps": round(float(leased.get(k.id, 0.0)), 3),
             "unusable_reports": int(reports.get(k.id, 0))}
            for k in self.session.execute(select(ApiKeyRow).order_by(ApiKeyRow.id)).scalars()
        ]  # fmt: skip


def _total(keys: list[dict[str, object]]) -> float:
    return round(sum(float(str(k["rps"])) for k in keys), 3)


def _hint(app_id: str) -> str:
    return app_id[:4] + "…" if len(app_id) > 4 else app_id


def node_service(session: Session, settings: Settings, broker: BrokerAdmin | None = None
                 ) -> NodeService:  # fmt: skip
    return NodeService(session, config=node_config(settings),
                       broker=broker or broker_admin_for(settings))  # fmt: skip
