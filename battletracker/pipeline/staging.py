"""A result's rows into the night's staging, the rules of the game applied set-based.

Checking every row in Python (``validate_result``) cost ~85 % of the store's time. Here
the rows go into ``staged_accounts`` by one binary COPY whose ``WHERE`` is the rules of
the game (:mod:`.rules_sql`, the reasons of ``row_problem``): the rows are read once, and
only when some break a rule (rare) are they sent again to set those aside with reasons.

The binary COPY checks the rows' types (an ``int8`` column takes no string, float or
``None``; ``varchar(64)`` no number, no longer nickname). What it cannot tell is checked
in bulk (C-speed passes, no Python loop over the values), batch by batch between the
COPY's writes (:func:`_check_batch`): rows that are lists of the columns' width, every
value an ``int``, ``str`` or ``None`` (a ``bool`` above all: JSON ``true`` would COPY as
1), ids rising through the chunk, so each is within it and there once (staging has no
key: a chunk is stored once by its state machine, see ``store.py``, and its ids are its
own; a fetcher sends its rows in id order), and whether some
nickname can break a nickname rule (else SQL leaves those rules out). The client waits
on the server for much of a COPY, so a batch checked while the server works on the ones
already sent costs less than its own time, where passes over the whole result before
the COPY would delay it by all of theirs.

A result this path cannot take as it is (a check failed, a refused COPY: a malformed
row, or an odd value no column can hold, such as a NUL in a nickname) leaves nothing
behind (a savepoint) and the caller judges it with the Python rules instead: rejected
as a whole, or stored with those rows set aside, exactly as before. A nickname that
may break a rule (rare) sends the rows again, the nickname rules in the ``WHERE``.
"""

from __future__ import annotations

import collections
import itertools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from ..constants import COUNTERS
from .result import COLUMNS, ChunkSpec
from .rules_sql import CONTROL_CHARACTER, keep_sql, latest_allowed, problem_sql

__all__ = ["SAVEPOINT", "STAGING_TYPES", "Odd", "stage_rows"]

#: PostgreSQL types of ``("cycle_id", *COLUMNS)`` in ``staged_accounts`` (the binary
#: COPY's wire format; the row-by-row fallback and the benchmarks name them).
STAGING_TYPES: tuple[str, ...] = ("int4", "int8", "varchar", "int8", "int8") + ("int8",) * len(
    COUNTERS
)
#: The types of ``COLUMNS`` alone: a cycle's partition has its cycle as default (0013).
_ROW_COPY_TYPES = list(STAGING_TYPES[1:])
_ROW_TYPES = frozenset({list, tuple})
#: Every value of a plain row is one of these (a ``bool`` is an ``int`` to the COPY).
_VALUE_TYPES = frozenset({int, str, type(None)})
_WIDTH = len(COLUMNS)
_ID = operator.itemgetter(COLUMNS.index("account_id"))
_NICKNAME = operator.itemgetter(COLUMNS.index("nickname"))
#: Rows checked and written at a time (see :func:`_copy`).
_BATCH = 1_000
#: A nickname SQL has to look at: a control character (NUL included: the COPY refuses it).
_ODD_NICKNAME = re.compile(CONTROL_CHARACTER.replace(r"\x01", r"\x00"))
#: Set by the caller right before :func:`stage_rows` (``store.py`` sets it in the round
#: trip that locks the chunk): a refused COPY rolls back to it.
SAVEPOINT = "bt_stage_rows"
#: What a COPY raises for rows it cannot take: client side (a value of the wrong type or
#: size for its column, a lone surrogate) or server side (NULL, length, NUL, field count).
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, TypeError, ValueError, OverflowError)

#: A staged row as received, for ``set_aside_rows.row`` (the JSON the node sent).
_ROW_JSON = f"jsonb_build_array({', '.join(COLUMNS)})"
_COPY_COLUMNS = ", ".join(COLUMNS)
#: Where the rows that break a rule wait (rarely) for their move to ``set_aside_rows``:
#: shaped as the cycle's partition, its default included.
_ODD_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS staged_odd (LIKE {partition} INCLUDING DEFAULTS) ON COMMIT DROP
"""
_SET_ASIDE = """
INSERT INTO set_aside_rows (cycle_id, chunk_id, account_id, kind, reason, row, node)
SELECT cycle_id, :chunk, account_id, 'rule', left(reason, 1000), row, :node
FROM (SELECT cycle_id, account_id, {problem} AS reason, {row} AS row FROM staged_odd) o
ORDER BY account_id
RETURNING account_id, reason
"""

Odd = tuple[int, str]


class _NotForCopy(Exception):
    """The rows are not for the set-based path (the Python rules judge them)."""


class _OddNickname(Exception):
    """Some nickname can break a nickname rule: SQL must check nicknames."""


@dataclass
class _Checks:
    """What :func:`_check_batch` needs from batch to batch of one COPY."""

    spec: ChunkSpec
    #: False once SQL checks the nicknames itself
    nicknames_clean: bool
    #: the id the next batch must start above (the rows' ids rise through a result)
    after: int = field(init=False)

    def __post_init__(self) -> None:
        self.after = self.spec.first_id - 1


def _check_batch(batch: Sequence[Any], checks: _Checks) -> None:
    """The checks the COPY cannot make, on one batch of rows (C-speed passes).

    Raises :class:`_NotForCopy` for rows that are not lists of the columns' width, a
    value that is not an ``int``, ``str`` or ``None``, ids that do not rise through the
    chunk (out of it, twice, or merely out of order: a fetcher sends them in order, and
    the Python rules judge any other), a nickname that is not a string;
    :class:`_OddNickname` for a nickname that is empty or holds a control character
    while SQL leaves nicknames unchecked.

    Rising ids are each once and within the chunk by a comparison per row, where a set
    of the ids seen and their ``min`` and ``max`` cost several times that.
    """
    if not set(map(type, batch)) <= _ROW_TYPES or set(map(len, batch)) != {_WIDTH}:
        raise _NotForCopy("a row that is not a list of the columns")
    if not set(map(type, itertools.chain.from_iterable(batch))) <= _VALUE_TYPES:
        raise _NotForCopy("a value no column takes (a bool?)")
    # the two columns read here, each by one C-level pass (no flat copy of every value)
    ids, nicknames = list(map(_ID, batch)), list(map(_NICKNAME, batch))
    try:
        rising = (
            checks.after < ids[0]
            and ids[-1] <= checks.spec.last_id
            and all(map(operator.lt, ids, itertools.islice(ids, 1, None)))
        )
        joined = "".join(nicknames)  # TypeError unless every nickname is a str
    except TypeError:  # an id or nickname of the wrong type
        raise _NotForCopy("an id or nickname of the wrong type") from None
    if not rising:
        raise _NotForCopy("ids that do not rise through the chunk")
    checks.after = ids[-1]
    if checks.nicknames_clean and ("" in nicknames or _ODD_NICKNAME.search(joined)):
        raise _OddNickname


def partition_of(cycle_id: int) -> str:
    """The cycle's staging partition (``partitions.ensure_cycle_staging``): the COPY goes
    straight there, saving the parent's routing of every row (~5 % of the COPY)."""
    return f"staged_accounts_c{int(cycle_id)}"


def _copy(
    conn: Connection,
    table: str,
    rows: Sequence[Any],
    where: str,
    *,
    checks: _Checks | None = None,
) -> int:
    """Binary COPY of ``rows`` into ``table`` keeping those ``where`` holds; rows copied.

    ``table`` is a cycle's partition, or shaped as one: its ``cycle_id`` defaults to the
    cycle, so the rows go as they are (no new row with the cycle in front of each), and
    each batch is written by one C-level pass (``map``), not a Python loop.

    ``checks``: run :func:`_check_batch` on each batch before it is written; what it
    raises aborts the COPY (nothing of it stays). On two cores the checks overlap with
    the server's work on the batches already sent.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f"COPY {table} ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY) {where}") as cp:
            cp.set_types(_ROW_COPY_TYPES)
            for start in range(0, len(rows), _BATCH):
                batch = rows[start : start + _BATCH]
                if checks is not None:
                    _check_batch(batch, checks)
                collections.deque(map(cp.write_row, batch), maxlen=0)
        return int(cur.rowcount)


def stage_rows(
    conn: Connection,
    spec: ChunkSpec,
    rows: Sequence[Any],
    *,
    node: str,
    now: int,
) -> list[Odd] | None:
    """COPY ``rows`` into staging and set aside those that break a rule (as of ``now``).

    Runs right after the caller set :data:`SAVEPOINT`.

    Returns the rows set aside (account id, reason), or None when the rows are not for
    this path (:func:`_check_batch`) or the COPY refused them: then nothing of them is
    written and the transaction is usable.

    The rules filter the COPY itself (``COPY ... WHERE keep_sql``): the rows are read
    once. Only when some were left out (rare) are they sent again, the odd ones kept this
    time (``problem_sql IS NOT NULL``), to be set aside with their reasons: ``keep_sql``
    is ``problem_sql IS NULL`` made cheap, so each row lands in exactly one of the two.
    The nickname rules are left out of both until a batch shows a nickname that can
    break them; then the COPY starts again with them.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    latest = str(latest_allowed(now))
    partition = partition_of(spec.cycle_id)

    def kept(nicknames: bool) -> int:
        return _copy(conn, partition, rows, f"WHERE {keep_sql(latest, nicknames=nicknames)}",
                     checks=_Checks(spec, nicknames_clean=not nicknames))  # fmt: skip

    nicknames = False
    try:
        try:
            staged = kept(nicknames)
        except _OddNickname:
            raw.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            nicknames = True
            staged = kept(nicknames)
    except (_NotForCopy, *_REFUSED):
        raw.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
        return None
    problem = problem_sql(latest, nicknames=nicknames)
    if staged == len(rows):
        return []
    conn.execute(text(_ODD_TABLE.format(partition=partition)))
    odd_rows = _copy(conn, "staged_odd", rows, f"WHERE ({problem}) IS NOT NULL")
    odd = conn.execute(
        text(_SET_ASIDE.format(problem=problem, row=_ROW_JSON)),
        {"chunk": spec.chunk_id, "node": node or None},
    ).all()
    conn.execute(text("TRUNCATE staged_odd"))
    if staged + odd_rows != len(rows) or len(odd) != odd_rows:
        raise RuntimeError(f"chunk {spec.chunk_id}: {len(rows)} rows, {staged} staged, "
                           f"{len(odd)} set aside")  # fmt: skip
    return [(int(a), str(r)) for a, r in odd]
