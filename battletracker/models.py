"""The mapped tables of the nightly cycle (SQLAlchemy 2 declarative, ``Mapped[...]``).

``total_battles``, ``diff_battles`` and the staging table are partitioned in PostgreSQL
(by month, by month and by cycle); the Alembic migration creates them with
``PARTITION BY`` and :mod:`battletracker.pipeline.partitions` adds partitions on demand.
The mapped classes here describe the parent tables, which is all queries need.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .constants import COUNTERS, PS_THRESHOLD, Platform, platform_of

__all__ = [
    "COUNTERS",
    "PS_THRESHOLD",
    "Base",
    "BoardBuild",
    "Chunk",
    "ChunkStatus",
    "Counters",
    "Cycle",
    "CycleStatus",
    "DiffBattles",
    "PieceState",
    "Platform",
    "PlatformRange",
    "Player",
    "SetAsideRow",
    "SnapshotCompaction",
    "StagedAccount",
    "TotalBattles",
    "WebSession",
    "platform_of",
]


class CycleStatus(enum.StrEnum):
    #: chunks are being fetched and stored
    fetching = "fetching"
    #: every chunk stored; diffs being computed
    diffing = "diffing"
    #: diffs done; ranges being grown
    growing = "growing"
    #: ranges done; daily activity and leaderboards being materialised
    materialising = "materialising"
    #: boards done; exporting to Elasticsearch (when configured)
    exporting = "exporting"
    done = "done"
    #: a stage failed for a reason retrying cannot fix: ``failed_stage`` and ``error`` say
    #: which and why; ``battletracker cycle retry`` runs that stage again
    failed = "failed"


class ChunkStatus(enum.StrEnum):
    pending = "pending"  # recorded, not yet published
    dispatched = "dispatched"  # published to the fetch queue
    stored = "stored"  # its result is in staging
    rejected = "rejected"  # a result came back invalid: publish again
    failed = "failed"  # gave up (attempts exhausted or a request bug): operator's call
    #: the API said METHOD_DISABLED: published again after ``not_before``
    held = "held"
    #: never stored: the night was closed (the next one was due) before it came back
    missed = "missed"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """Store enums by value (``'xbox'``), as text checked by a named constraint."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class PieceState(enum.StrEnum):
    """Where one piece of a cycle's boards stage is (``board_builds.state``)."""

    pending = "pending"
    running = "running"
    done = "done"
    #: failed for a reason retrying cannot fix; ``cycle retry`` makes it pending again
    failed = "failed"


class Base(DeclarativeBase):
    pass


class Counters:
    """The 14 ``statistics.all`` counters, under their API names, in ``COUNTERS`` order."""

    battles: Mapped[int] = mapped_column(BigInteger)
    wins: Mapped[int] = mapped_column(BigInteger)
    losses: Mapped[int] = mapped_column(BigInteger)
    draws: Mapped[int] = mapped_column(BigInteger)
    spotted: Mapped[int] = mapped_column(BigInteger)
    frags: Mapped[int] = mapped_column(BigInteger)
    damage_dealt: Mapped[int] = mapped_column(BigInteger)
    damage_received: Mapped[int] = mapped_column(BigInteger)
    dropped_capture_points: Mapped[int] = mapped_column(BigInteger)
    capture_points: Mapped[int] = mapped_column(BigInteger)
    xp: Mapped[int] = mapped_column(BigInteger)
    hits: Mapped[int] = mapped_column(BigInteger)
    shots: Mapped[int] = mapped_column(BigInteger)
    survived_battles: Mapped[int] = mapped_column(BigInteger)


class Player(Counters, Base):
    """An account's current state, updated only where something changed."""

    __tablename__ = "players"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    platform: Mapped[Platform] = mapped_column(_enum(Platform, "platform"))
    nickname: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int | None] = mapped_column(BigInteger)  # Unix seconds, as the API
    last_battle_time: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    #: The cycle date on which this account was first seen or its counters last changed.
    last_seen: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (
        Index("ix_players_platform_battles", "platform", "battles"),
        # the export and "changed today" queries select by it
        Index("ix_players_last_seen", "last_seen"),
    )


#: Nickname search is case-insensitive by prefix: a btree over ``lower(nickname)`` with
#: ``text_pattern_ops`` (byte order) serves ``~>=~ prefix AND ~<~ successor`` as a range
#: scan, in index order, whatever the database's collation (migration 0008).
Index("ix_players_nickname_lower", func.lower(Player.nickname).label("nickname_lower"),
      postgresql_ops={"nickname_lower": "text_pattern_ops"})


class _DailyCounters(Counters):
    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    platform: Mapped[Platform] = mapped_column(_enum(Platform, "platform"))


class TotalBattles(_DailyCounters, Base):
    """The counters of an account on each day they changed (a snapshot)."""

    __tablename__ = "total_battles"
    __table_args__ = (
        Index("ix_total_battles_date_platform", "date", "platform"),
        {"postgresql_partition_by": "RANGE (date)"},
    )


class DiffBattles(_DailyCounters, Base):
    """The change of each counter of an account since its previous snapshot.

    ``days`` is how many days that change spans: 1 when the account was read the night
    before, more when nights in between missed it (its chunk was never stored).
    """

    __tablename__ = "diff_battles"
    days: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    __table_args__ = (
        Index("ix_diff_battles_date_platform", "date", "platform"),
        {"postgresql_partition_by": "RANGE (date)"},
    )


class PlatformRange(Base):
    """The live id range of a platform; ``history`` lists every growth."""

    __tablename__ = "platform_ranges"

    platform: Mapped[Platform] = mapped_column(_enum(Platform, "platform"), primary_key=True)
    min_id: Mapped[int] = mapped_column(BigInteger)
    max_id: Mapped[int] = mapped_column(BigInteger)
    #: ``[{"date": ..., "cycle_id": ..., "from": old_max, "to": new_max, "highest": id}]``
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (CheckConstraint("min_id <= max_id", name="ck_platform_ranges_order"),)


class Cycle(Base):
    """One night: the date it records, its progress and timings."""

    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[CycleStatus] = mapped_column(_enum(CycleStatus, "cycle_status"))
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    #: Incremented in the transaction that stores a chunk: the completion counter.
    chunks_stored: Mapped[int] = mapped_column(Integer, default=0)
    ids_total: Mapped[int] = mapped_column(BigInteger, default=0)
    accounts: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected_results: Mapped[int] = mapped_column(Integer, default=0)
    #: Rows set aside by the store (a rule of the game broken), see ``set_aside_rows``.
    set_aside: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Accounts whose counters went down since their previous snapshot (a new baseline).
    anomalies: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Accounts seen for the first time whose lifetime play was not counted as this
    #: day's (the platform's first night, or ids no earlier night could read).
    baseline_accounts: Mapped[int | None] = mapped_column(BigInteger)
    #: Closed before every chunk was stored (the next night was due): see ``notes``.
    partial: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    #: The stage that failed for good and why (status ``failed``).
    failed_stage: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    changed_players: Mapped[int | None] = mapped_column(BigInteger)
    new_players: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    fetched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    diffed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the status last changed: the reaper re-sends a stage stuck past it.
    status_changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    #: Range growth and export results, for the operator.
    notes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __table_args__ = (UniqueConstraint("date", name="uq_cycles_date"),)


class Chunk(Base):
    """A contiguous slice of one platform's ids, fetched by one ``fetch_range`` task."""

    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    platform: Mapped[Platform] = mapped_column(_enum(Platform, "platform"))
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ChunkStatus] = mapped_column(_enum(ChunkStatus, "chunk_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    node: Mapped[str | None] = mapped_column(String(255))
    accounts: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    stored_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Seconds the node spent fetching, as it reported.
    fetch_seconds: Mapped[float | None] = mapped_column()
    #: A fetch said it is still working on the chunk (the reaper's staleness clock).
    progress_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: A held chunk (METHOD_DISABLED) is published again only after this.
    not_before: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("cycle_id", "platform", "first_id", name="uq_chunks_cycle_first"),
        Index("ix_chunks_cycle_status", "cycle_id", "status"),
        CheckConstraint("first_id <= last_id", name="ck_chunks_order"),
    )


class StagedAccount(Counters, Base):
    """What a cycle fetched, as COPYed by ``store_results``; one partition per cycle.

    No key in the database (migration 0011): maintaining one cost the store about a third
    of its COPY. Each account is there once because a chunk is stored once (its row lock
    and status), a result holds each of its chunk's ids once (checked as it is COPYed),
    and a cycle's chunks do not overlap. The mapper still names the pair as its identity.
    """

    __tablename__ = "staged_accounts"

    cycle_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(BigInteger, autoincrement=False)
    nickname: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int | None] = mapped_column(BigInteger)
    last_battle_time: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = ({"postgresql_partition_by": "LIST (cycle_id)"},)
    __mapper_args__ = {"primary_key": [cycle_id, account_id]}


class SetAsideRow(Base):
    """A row not taken into the numbers, with its reason, for the operator to look at.

    ``kind`` ``rule``: the store found it breaks a rule of the game (the rest of its
    chunk was stored); ``decrease``: a counter went down since the account's previous
    snapshot (no diff that day; the new counters are the account's new baseline).
    """

    __tablename__ = "set_aside_rows"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    chunk_id: Mapped[int | None] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    #: The row as received (``COLUMNS`` order), or old and new counters for a decrease.
    row: Mapped[Any] = mapped_column(JSONB)
    node: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("ix_set_aside_rows_cycle", "cycle_id", "kind"),)
class BoardBuild(Base):
    """One piece of a cycle's ``materialising`` stage, built by its own task.

    ``board`` is a registered board, or :data:`SUMS` for the window's per-account sums
    its boards read; the day's activity is the piece (:data:`ANY_WINDOW`, ``activity``).
    The task building a piece holds its row locked, so the reaper (``SKIP LOCKED``)
    re-sends only a piece nobody is building.
    """

    __tablename__ = "board_builds"

    SUMS = "*"
    ANY_WINDOW = "*"
    ACTIVITY = "activity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"))
    time_window: Mapped[str] = mapped_column(String(16))
    board: Mapped[str] = mapped_column(String(64))
    state: Mapped[PieceState] = mapped_column(_enum(PieceState, "piece_state"))
    #: Times a task started building it (Celery retries and re-deliveries included).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    #: When its task was last sent (NULL: not yet, its window's sums are not built).
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Seconds the build took inside its task (the figure the time limit bounds).
    seconds: Mapped[float | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("cycle_id", "time_window", "board", name="uq_board_builds_piece"),
        Index("ix_board_builds_cycle_state", "cycle_id", "state"),
    )


class WebSession(Base):
    """A web login (operator, guest or Wargaming player), kept server-side so that logging
    out, or removing an operator, ends it for good (a signed cookie alone cannot be
    revoked). The cookie holds a random token; only its SHA-256 is stored here."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str | None] = mapped_column(String(128))
    #: Digest of the operator's configured password hash at login: a changed password or
    #: a removed operator no longer matches, and the session is refused.
    operator_fingerprint: Mapped[str | None] = mapped_column(String(64))
    guest: Mapped[bool] = mapped_column(default=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    nickname: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_web_sessions_expires_at", "expires_at"),
        Index("ix_web_sessions_operator", "operator"),
    )


class SnapshotCompaction(Base):
    """A month of ``total_battles`` rewritten to its Sunday snapshots (migration 0012)."""

    __tablename__ = "snapshot_compactions"

    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    rows_before: Mapped[int] = mapped_column(BigInteger)
    rows_after: Mapped[int] = mapped_column(BigInteger)
    compacted_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
