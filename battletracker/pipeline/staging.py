"""A result's rows into the night's staging, the rules of the game applied set-based.

Checking every row in Python (``validate_result``) cost ~85 % of the store's time. Here
the rows go into ``staged_accounts`` by one binary COPY whose ``WHERE`` is the rules of
the game (:mod:`.rules_sql`, the reasons of ``row_problem``): the rows are read once, and
only when some break a rule (rare) are they sent again to set those aside with reasons.

The COPY itself checks the rows' types, at C speed, with no Python loop over the values:
each value is sent by its own Python type (``int`` as ``int8``, ``str`` as text), so a
``bool``, ``float``, list or object is refused by its dumper, a value of the wrong size
for its column (a ``str`` or ``None`` where a number belongs, an ``int`` past ``int8``,
a row of the wrong length) by PostgreSQL. The one confusion left, a text of exactly 8
bytes read as an ``int8``, is closed by counting the texts sent: one per row, its
nickname (checked to be a ``str`` before). What the COPY cannot tell is checked before
it, in bulk: rows that are lists, ids within the chunk and each id once (staging has
no key: a chunk is stored once by its state machine, see ``store.py``, and its ids are
its own).

A result this path cannot take as it is (a refused COPY: a malformed row, or an odd
value no column can hold, such as a NUL in a nickname) leaves nothing behind (a
savepoint) and the caller judges it with the Python rules instead: rejected as a whole,
or stored with those rows set aside, exactly as before.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.numeric import Int4BinaryDumper, Int8BinaryDumper
from sqlalchemy import Connection, text

from ..constants import COUNTERS
from .result import COLUMNS, ChunkSpec
from .rules_sql import CONTROL_CHARACTER, latest_allowed, problem_sql

__all__ = ["SAVEPOINT", "STAGING_TYPES", "Odd", "Prescan", "prescan", "stage_rows"]

#: PostgreSQL types of ``("cycle_id", *COLUMNS)`` in ``staged_accounts`` (the binary
#: COPY's wire format; the row-by-row fallback and the benchmarks name them).
STAGING_TYPES: tuple[str, ...] = ("int4", "int8", "varchar", "int8", "int8") + ("int8",) * len(
    COUNTERS
)
_ROW_TYPES = frozenset({list, tuple})
_FIRST = operator.itemgetter(0)
_NICKNAME = operator.itemgetter(1)
#: A nickname SQL has to look at: a control character (NUL included: the COPY refuses it).
_ODD_NICKNAME = re.compile(CONTROL_CHARACTER.replace(r"\x01", r"\x00"))
#: Set by the caller right before :func:`stage_rows` (``store.py`` sets it in the round
#: trip that locks the chunk): a refused COPY rolls back to it.
SAVEPOINT = "bt_stage_rows"
#: What a COPY raises for rows it cannot take: client side (a value of a refused type,
#: a lone surrogate, an int past int8) or server side (NULL, length, NUL, field size).
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, TypeError, ValueError, OverflowError)

#: A staged row as received, for ``set_aside_rows.row`` (the JSON the node sent).
_ROW_JSON = f"jsonb_build_array({', '.join(COLUMNS)})"
_COPY_COLUMNS = ", ".join(("cycle_id", *COLUMNS))
#: Where the rows that break a rule wait (rarely) for their move to ``set_aside_rows``.
_ODD_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS staged_odd (LIKE staged_accounts) ON COMMIT DROP
"""
_SET_ASIDE = """
INSERT INTO set_aside_rows (cycle_id, chunk_id, account_id, kind, reason, row, node)
SELECT cycle_id, :chunk, account_id, 'rule', left(reason, 1000), row, :node
FROM (SELECT cycle_id, account_id, {problem} AS reason, {row} AS row FROM staged_odd) o
ORDER BY account_id
RETURNING account_id, reason
"""

Odd = tuple[int, str]


@dataclass(frozen=True)
class Prescan:
    """What the bulk checks before the COPY found: may SQL skip the nickname rules?"""

    #: some nickname is empty or holds a control character: SQL checks nicknames
    nicknames: bool


def prescan(rows: Sequence[Any], spec: ChunkSpec) -> Prescan | None:
    """The checks the COPY cannot make, in bulk (C speed, no loop over the values).

    None when the rows are not for the set-based path: not lists, an id outside the
    chunk or twice, a nickname that is not a string.
    """
    if not rows:
        return Prescan(nicknames=False)
    if not set(map(type, rows)) <= _ROW_TYPES:
        return None
    try:
        ids = list(map(_FIRST, rows))
        if not (spec.first_id <= min(ids) and max(ids) <= spec.last_id):
            return None
        nicknames = list(map(_NICKNAME, rows))
        joined = "".join(nicknames)  # TypeError unless every nickname is a str
    except (TypeError, IndexError):  # an empty row, an id or nickname of the wrong type
        return None
    if len(set(ids)) != len(ids):
        return None
    return Prescan(nicknames="" in nicknames or _ODD_NICKNAME.search(joined) is not None)


class _Refused(Dumper):
    """A value of a type no column takes (``bool``, ``float``, a list or an object)."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        raise TypeError(f"a {type(obj).__name__} is not a column value")


class _CycleId(int):
    """The row's ``cycle_id``: sent as ``int4`` (every other ``int`` as ``int8``)."""


class _Text(Dumper):
    """``str`` as text, counted (see the module docstring)."""

    format = Format.BINARY
    sent = 0

    def dump(self, obj: str) -> bytes:
        type(self).sent += 1
        return obj.encode()


def _text_dumper() -> type[_Text]:
    """A fresh counting ``str`` dumper for one COPY."""
    return type("_Text", (_Text,), {"sent": 0})


def _copy(conn: Connection, table: str, cycle_id: int, rows: Sequence[Any], where: str) -> int:
    """Binary COPY of ``rows`` into ``table`` keeping those ``where`` holds; rows copied.

    Raises ``TypeError`` (a refused type, or a text where a number belongs) or a
    psycopg error when the COPY cannot take the rows.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cid = _CycleId(cycle_id)
    text_dumper = _text_dumper()
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        adapters = cur.adapters
        adapters.register_dumper(int, Int8BinaryDumper)
        adapters.register_dumper(_CycleId, Int4BinaryDumper)
        adapters.register_dumper(str, text_dumper)
        for refused in (bool, float, list, tuple, dict):
            adapters.register_dumper(refused, _Refused)
        with cur.copy(f"COPY {table} ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY) {where}") as cp:
            for row in rows:
                cp.write_row((cid, *row))
            if text_dumper.sent != len(rows):  # a text outside the nickname column
                raise TypeError(f"{text_dumper.sent} texts in {len(rows)} rows")
        return int(cur.rowcount)


def stage_rows(
    conn: Connection,
    spec: ChunkSpec,
    rows: Sequence[Any],
    scan: Prescan,
    *,
    node: str,
    now: int,
) -> list[Odd] | None:
    """COPY ``rows`` into staging and set aside those that break a rule (as of ``now``).

    Runs right after the caller set :data:`SAVEPOINT`.

    Returns the rows set aside (account id, reason), or None when the COPY refused the
    rows: then nothing of them is written and the transaction is usable.

    The rules filter the COPY itself (``COPY ... WHERE``): the rows are read once. Only
    when some were left out (rare) are they sent again, the odd ones kept this time, to
    be set aside with their reasons: the same expression decides both, so each row lands
    in exactly one of the two. The nickname rules are left out of it when ``scan`` shows
    no nickname can break them.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    problem = problem_sql(str(latest_allowed(now)), nicknames=scan.nicknames)
    try:
        staged = _copy(conn, "staged_accounts", spec.cycle_id, rows, f"WHERE ({problem}) IS NULL")
    except _REFUSED:
        raw.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
        return None
    if staged == len(rows):
        return []
    conn.execute(text(_ODD_TABLE))
    odd_rows = _copy(conn, "staged_odd", spec.cycle_id, rows, f"WHERE ({problem}) IS NOT NULL")
    odd = conn.execute(
        text(_SET_ASIDE.format(problem=problem, row=_ROW_JSON)),
        {"chunk": spec.chunk_id, "node": node or None},
    ).all()
    conn.execute(text("TRUNCATE staged_odd"))
    if staged + odd_rows != len(rows) or len(odd) != odd_rows:
        raise RuntimeError(f"chunk {spec.chunk_id}: {len(rows)} rows, {staged} staged, "
                           f"{len(odd)} set aside")  # fmt: skip
    return [(int(a), str(r)) for a, r in odd]
