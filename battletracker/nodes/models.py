"""The node domain's tables: volunteers, invites, the key pool, leases and what nodes did.

Nothing here stores a secret a node could reuse: a node's secret and an invite code are
kept as SHA-256 hashes (both are 256-bit random values, so a slow password hash adds
nothing). A lease's signing key is stored as is: the server must recompute result
signatures with it, it lives only as long as the lease, and a ban revokes it.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base

__all__ = [
    "ApiKeyRow",
    "ChunkNode",
    "KeyReport",
    "KeyState",
    "LeaseShare",
    "Node",
    "NodeInvite",
    "NodeLease",
    "NodeState",
    "ResultRejection",
]


class NodeState(enum.StrEnum):
    #: registered without an invite: waits for ``battletracker nodes approve``
    pending = "pending"
    approved = "approved"
    #: spot checks found wrong data: its results are refused until the operator approves
    quarantined = "quarantined"
    banned = "banned"


class KeyState(enum.StrEnum):
    active = "active"
    disabled = "disabled"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=16,
                values_callable=lambda e: [m.value for m in e])  # fmt: skip


def _now() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Node(Base):
    """A volunteer machine: its public name, state, secret hash, trust and credit."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Public name shown on the volunteers page (never a hostname unless the owner chose it).
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[NodeState] = mapped_column(_enum(NodeState, "node_state"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = _now()
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: 1.0 = fully trusted; spot checks lower it; below ``trust_threshold``: quarantined.
    trust: Mapped[float] = mapped_column(Float, default=1.0)
    chunks_stored: Mapped[int] = mapped_column(Integer, default=0)
    accounts_stored: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_results: Mapped[int] = mapped_column(Integer, default=0)
    spot_checks: Mapped[int] = mapped_column(Integer, default=0)
    spot_failures: Mapped[int] = mapped_column(Integer, default=0)
    #: Why the node is quarantined or banned, for the operator.
    note: Mapped[str | None] = mapped_column(Text)


class NodeInvite(Base):
    """A one-time code that enrols a node approved at once."""

    __tablename__ = "node_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = _now()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))


class ApiKeyRow(Base):
    """An application id of the operator's pool and the requests/s it may spend in all."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), unique=True)
    rps: Mapped[float] = mapped_column(Float)
    state: Mapped[KeyState] = mapped_column(_enum(KeyState, "key_state"))
    created_at: Mapped[dt.datetime] = _now()
    note: Mapped[str | None] = mapped_column(Text)


class NodeLease(Base):
    """A node's current right to fetch: its signing key and expiry (renewed by heartbeat)."""

    __tablename__ = "node_leases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    #: hex HMAC key the node signs its results with; revoked with the lease.
    signing_key: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = _now()
    renewed_at: Mapped[dt.datetime] = _now()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_node_leases_node", "node_id"),)


class LeaseShare(Base):
    """The requests/s of one pool key a lease may spend, and what it just gave up.

    ``held_rps``: the part of a lowered share still counted against the key until
    ``held_until`` (the node's requests of the last second still count at the API).
    """

    __tablename__ = "lease_shares"

    lease_id: Mapped[int] = mapped_column(
        ForeignKey("node_leases.id", ondelete="CASCADE"), primary_key=True
    )
    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    rps: Mapped[float] = mapped_column(Float)
    held_rps: Mapped[float] = mapped_column(Float, server_default=text("0"), default=0.0)
    held_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ResultRejection(Base):
    """One refused result or message, with the reason; the node only if it proved who it is."""

    __tablename__ = "result_rejections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = _now()
    reason: Mapped[str] = mapped_column(String(32))
    #: set only when the signature was valid: a forger cannot charge another node
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    #: the node id the message claimed (unverified), for the operator's eyes
    claimed_node: Mapped[int | None] = mapped_column(Integer)
    chunk_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_result_rejections_reason", "reason"),)


class KeyReport(Base):
    """A node said a pool key is unusable (blocked, invalid): the operator must look."""

    __tablename__ = "key_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = _now()
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(200))


class ChunkNode(Base):
    """Which node's authenticated result filled a chunk: spot checks and credit use it."""

    __tablename__ = "chunk_nodes"

    chunk_id: Mapped[int] = mapped_column(
        ForeignKey("chunks.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    cycle_id: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    stored_at: Mapped[dt.datetime] = _now()
    #: None: not checked; True: a re-fetch agreed; False: it disagreed.
    spot_ok: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (Index("ix_chunk_nodes_cycle_node", "cycle_id", "node_id"),)
