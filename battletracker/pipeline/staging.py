"""A result's rows into the night's staging, the rules of the game applied set-based.

Checking every row in Python (``validate_result``) cost ~85 % of the store's time. Here
the rows go into ``staged_accounts`` by a binary COPY, which already enforces their types
(an ``int8`` column takes no string, float or ``None``; ``varchar(64)`` no
longer nickname; the key no id twice), and one statement then moves the rows that break a rule
(:mod:`.rules_sql`, the reasons of ``row_problem``) to ``set_aside_rows``. What the COPY
cannot tell apart is checked before, in bulk: a ``bool`` (a JSON ``true`` would COPY as
1), a row that is not a list, an id outside the chunk.

A result this path cannot take as it is (the COPY refuses it: a malformed row, or an odd
value no column can hold, such as a NUL in a nickname or an integer past ``int8``) leaves
nothing behind (a savepoint) and the caller judges it with the Python rules instead:
rejected as a whole, or stored with those rows set aside, exactly as before.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from ..constants import COUNTERS
from .result import COLUMNS, ChunkSpec
from .rules_sql import latest_allowed, problem_sql

__all__ = ["STAGING_TYPES", "Odd", "copyable", "stage_rows"]

#: PostgreSQL types of ``("cycle_id", *COLUMNS)`` in ``staged_accounts``: the binary COPY
#: sends values in these types (about twice the rows/s of text COPY, see
#: ``scripts/bench_store.py``).
STAGING_TYPES: tuple[str, ...] = ("int4", "int8", "varchar", "int8", "int8") + ("int8",) * len(
    COUNTERS
)
_ROW_TYPES = frozenset({list, tuple})
#: Every value of a plain row is one of these (a ``bool`` is an ``int`` to the COPY).
_VALUE_TYPES = frozenset({int, str, type(None)})
_FIRST = operator.itemgetter(0)
_SAVEPOINT = "bt_stage_rows"
#: What a COPY raises for rows it cannot take: client side (a value of the wrong type or
#: size for its column, a lone surrogate) or server side (NULL, length, NUL, a second id).
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, TypeError, ValueError, OverflowError)

#: A staged row as received, for ``set_aside_rows.row`` (the JSON the node sent).
_ROW_JSON = f"jsonb_build_array({', '.join(COLUMNS)})"
_COPY_COLUMNS = ", ".join(("cycle_id", *COLUMNS))
#: Where the rows that break a rule wait (rarely) for their move to ``set_aside_rows``.
_ODD_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS staged_odd (LIKE staged_accounts) ON COMMIT DROP
"""
_SET_ASIDE = f"""
INSERT INTO set_aside_rows (cycle_id, chunk_id, account_id, kind, reason, row, node)
SELECT cycle_id, :chunk, account_id, 'rule', left(reason, 1000), row, :node
FROM (SELECT cycle_id, account_id, {problem_sql()} AS reason, {_ROW_JSON} AS row
      FROM staged_odd) o
ORDER BY account_id
RETURNING account_id, reason
"""

Odd = tuple[int, str]


def copyable(rows: Sequence[Any], spec: ChunkSpec) -> bool:
    """True when the COPY's own type checks are enough for ``rows`` (C-speed, no per-row
    Python): lists of ints, strings and ``None`` only, every id within the chunk."""
    if not rows:
        return True
    if not set(map(type, rows)) <= _ROW_TYPES:
        return False
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _VALUE_TYPES:
        return False
    try:
        ids = list(map(_FIRST, rows))
        return bool(spec.first_id <= min(ids) and max(ids) <= spec.last_id)
    except (TypeError, IndexError):  # an empty row, or an id that is not a number
        return False


def _copy(conn: Connection, table: str, cycle_id: int, rows: Sequence[Any], where: str) -> int:
    """Binary COPY of ``rows`` into ``table`` keeping those ``where`` holds; rows copied."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with raw.cursor() as cur:  # type: ignore[attr-defined]
        with cur.copy(f"COPY {table} ({_COPY_COLUMNS}) FROM STDIN (FORMAT BINARY) {where}") as cp:
            cp.set_types(list(STAGING_TYPES))
            for row in rows:
                cp.write_row((cycle_id, *row))
        return int(cur.rowcount)


def stage_rows(
    conn: Connection, spec: ChunkSpec, rows: Sequence[Any], *, node: str, now: int
) -> list[Odd] | None:
    """COPY ``rows`` into staging and set aside those that break a rule (as of ``now``).

    Returns the rows set aside (account id, reason), or None when the COPY refused the
    rows: then nothing of them is written and the transaction is usable.

    The rules filter the COPY itself (``COPY ... WHERE``): the rows are read once. Only
    when some were left out (rare) are they sent again, the odd ones kept this time, to
    be set aside with their reasons: the same expression decides both, so each row lands
    in exactly one of the two.
    """
    raw = conn.connection.dbapi_connection
    assert raw is not None
    problem = problem_sql(str(latest_allowed(now)))
    raw.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        staged = _copy(conn, "staged_accounts", spec.cycle_id, rows, f"WHERE ({problem}) IS NULL")
    except _REFUSED:
        raw.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        return None
    raw.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    if staged == len(rows):
        return []
    conn.execute(text(_ODD_TABLE))
    odd_rows = _copy(conn, "staged_odd", spec.cycle_id, rows, f"WHERE ({problem}) IS NOT NULL")
    odd = conn.execute(
        text(_SET_ASIDE),
        {"chunk": spec.chunk_id, "node": node or None, "latest": latest_allowed(now)},
    ).all()
    conn.execute(text("TRUNCATE staged_odd"))
    if staged + odd_rows != len(rows) or len(odd) != odd_rows:
        raise RuntimeError(f"chunk {spec.chunk_id}: {len(rows)} rows, {staged} staged, "
                           f"{len(odd)} set aside")  # fmt: skip
    return [(int(a), str(r)) for a, r in odd]
