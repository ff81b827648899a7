"""The messages between coordinator, fetchers and the store, and their validation.

A fetch result comes from a volunteer's machine: it is untrusted input. Everything in it
is checked for type, range and consistency with its chunk before a byte of it is stored;
:class:`InvalidResult` says what was wrong. A row of the right types whose values break
a rule of the game (:mod:`battletracker.validation`) does not refuse the result: it is
set aside with its reason and the other rows are stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..constants import PS_THRESHOLD
from ..validation import COLUMNS, RowShapeError, row_problem, row_shape

__all__ = [
    "COLUMNS",
    "MAX_CHUNK_IDS",
    "RESULT_VERSION",
    "ChunkSpec",
    "Envelope",
    "FetchResult",
    "InvalidResult",
    "SetAside",
    "check_envelope",
    "validate_result",
]

RESULT_VERSION = 1
MAX_CHUNK_IDS = 100_000
_ID_LIMIT = 2**40
_KEYS = {
    "v", "cycle_id", "chunk_id", "platform", "first_id", "last_id", "columns", "rows",
    "empty", "node", "seconds", "requests", "limit_errors", "retries",
}  # fmt: skip


class InvalidResult(ValueError):
    """A result that must not be stored; the message says why."""


@dataclass(frozen=True)
class ChunkSpec:
    """What a fetcher needs to know of a chunk (the ``fetch_range`` argument)."""

    chunk_id: int
    cycle_id: int
    platform: str
    first_id: int
    last_id: int
    #: The attempt this chunk is dispatched in (set by the dispatcher; not part of the
    #: result: the dispatch token carries it, see nodes/verify.py).
    attempt: int = field(default=0, compare=False)

    @property
    def size(self) -> int:
        return self.last_id - self.first_id + 1

    def to_message(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "cycle_id": self.cycle_id,
            "platform": self.platform,
            "first_id": self.first_id,
            "last_id": self.last_id,
        }

    @classmethod
    def from_message(cls, raw: object) -> ChunkSpec:
        if not isinstance(raw, dict):
            raise InvalidResult("chunk: not an object")
        spec = cls(
            chunk_id=_int(raw, "chunk_id", 1, 2**31),
            cycle_id=_int(raw, "cycle_id", 1, 2**31),
            platform=_platform(raw.get("platform")),
            first_id=_int(raw, "first_id", 1, _ID_LIMIT),
            last_id=_int(raw, "last_id", 1, _ID_LIMIT),
        )
        if spec.first_id > spec.last_id or spec.size > MAX_CHUNK_IDS:
            raise InvalidResult(f"chunk: bad span {spec.first_id}..{spec.last_id}")
        if any(_platform_of(i) != spec.platform for i in (spec.first_id, spec.last_id)):
            raise InvalidResult("chunk: ids outside its platform")
        return spec


Row = tuple[Any, ...]


@dataclass(frozen=True)
class SetAside:
    """A row of the right types that breaks a rule of the game: not stored, kept aside."""

    row: Row
    reason: str

    @property
    def account_id(self) -> int:
        return int(self.row[0])


@dataclass(frozen=True)
class FetchResult:
    """A validated result: the chunk, one row per account (``COLUMNS``), the rest.

    ``rows`` are the rows to store; ``set_aside`` those that break a rule (a result made
    by a fetcher has none: it sends what the API said, the server judges).
    """

    spec: ChunkSpec
    rows: list[Row]
    empty: int
    node: str = ""
    seconds: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    set_aside: list[SetAside] = field(default_factory=list)

    def to_message(self) -> dict[str, Any]:
        rows = [*self.rows, *(s.row for s in self.set_aside)]
        return {
            "v": RESULT_VERSION,
            **self.spec.to_message(),
            "columns": list(COLUMNS),
            "rows": [list(r) for r in rows],
            "empty": self.empty,
            "node": self.node,
            "seconds": self.seconds,
            **self.stats,
        }


def _platform_of(account_id: int) -> str:
    return "xbox" if account_id < PS_THRESHOLD else "ps"


def _platform(value: object) -> str:
    if value not in ("xbox", "ps"):
        raise InvalidResult(f"platform: {value!r} is not 'xbox' or 'ps'")
    return str(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(raw: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = raw.get(key)
    if not _is_int(value) or not lo <= value < hi:  # type: ignore[operator]
        raise InvalidResult(f"{key}: {value!r} is not an integer in [{lo}, {hi})")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Envelope:
    """A result whose every part but the rows' contents is checked: the chunk, the
    bookkeeping, and a list of at most one row per id that with ``empty`` covers the chunk.

    The store's set-based path takes it from here (the rows' types checked by the binary
    COPY, their values by SQL); :func:`validate_result` checks the rows in Python.
    """

    spec: ChunkSpec
    rows: list[Any]
    empty: int
    node: str
    seconds: float
    stats: dict[str, int]


def check_envelope(raw: object) -> Envelope:
    """Check everything in ``raw`` except the contents of its rows; :class:`InvalidResult`."""
    if not isinstance(raw, dict):
        raise InvalidResult("result: not an object")
    unknown = set(raw) - _KEYS
    if unknown:
        raise InvalidResult(f"result: unknown keys {sorted(unknown)[:5]}")
    if not _is_int(raw.get("v")) or raw.get("v") != RESULT_VERSION:  # true == 1.0 == 1
        raise InvalidResult(f"result: version {raw.get('v')!r} is not {RESULT_VERSION}")
    spec = ChunkSpec.from_message(raw)
    if raw.get("columns") != list(COLUMNS):
        raise InvalidResult("result: columns differ from this server's")
    rows_raw = raw.get("rows")
    if not isinstance(rows_raw, list) or len(rows_raw) > spec.size:
        raise InvalidResult("rows: not a list of at most one row per id")
    empty = _int(raw, "empty", 0, MAX_CHUNK_IDS + 1)
    if len(rows_raw) + empty != spec.size:
        raise InvalidResult(
            f"result: {len(rows_raw)} accounts + {empty} empty ids != {spec.size} ids in the chunk"
        )
    node = raw.get("node", "")
    if not isinstance(node, str) or len(node) > 255 or not node.isprintable():
        raise InvalidResult("node: not a short printable name")
    seconds = raw.get("seconds", 0.0)
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not (0 <= seconds < 86_400)
    ):
        raise InvalidResult("seconds: not a duration")
    stats = {k: _int(raw, k, 0, 10**9) for k in ("requests", "limit_errors", "retries") if k in raw}
    return Envelope(spec, rows_raw, empty, node, float(seconds), stats)


def validate_result(raw: object, *, now: int | None = None) -> FetchResult:
    """Check a raw result message completely; raise :class:`InvalidResult` on any flaw.

    Rows that break a rule of :func:`~battletracker.validation.row_problem` (as of
    ``now``, Unix seconds) go to ``set_aside`` instead of ``rows``. The readable
    reference of what the store does set-based (``pipeline/staging.py``).
    """
    env = check_envelope(raw)
    spec = env.spec
    try:
        shaped = [row_shape(r, spec.first_id, spec.last_id) for r in env.rows]
    except RowShapeError as exc:
        raise InvalidResult(str(exc)) from None
    if len({r[0] for r in shaped}) != len(shaped):
        raise InvalidResult("rows: an account id appears twice")
    clock = int(time.time()) if now is None else now
    rows: list[Row] = []
    set_aside: list[SetAside] = []
    for r in shaped:
        problem = row_problem(r, now=clock)
        if problem is None:
            rows.append(r)
        else:
            set_aside.append(SetAside(r, problem))
    return FetchResult(spec, rows, env.empty, env.node, env.seconds, env.stats, set_aside)
