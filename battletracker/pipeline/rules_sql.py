"""The rules of the game (:func:`battletracker.validation.row_problem`) as one SQL expression.

The store checks a chunk's rows where they already are, after the COPY: one CASE over
the staged columns that gives the first rule a row breaks, with the very reason text of
``row_problem``, or NULL. It is written out from the same constants as the Python rules,
in the same order, so the two cannot drift apart silently; ``tests/integration/
test_rules_sql.py`` feeds both the same random and edge rows and compares them.

CASE evaluates its branches in order and stops at the first true one: by the time a
branch multiplies ``battles`` or sums the outcomes, the branches before it have bounded
every operand, so no expression here can overflow ``bigint``.
"""

from __future__ import annotations

from ..constants import COUNTERS
from ..validation import CLOCK_SKEW, COUNTER_PER_BATTLE, FIRST_CREATED_AT, MAX_BATTLES, MAX_NICKNAME

__all__ = ["CONTROL_CHARACTER", "keep_sql", "latest_allowed", "problem_sql"]

#: Unicode category Cc (U+0000-U+001F, U+007F-U+009F), as a PostgreSQL regex class. NUL and
#: lone surrogates (Cs) cannot be stored in a PostgreSQL text: a row holding them never
#: reaches SQL (the COPY refuses it and the store checks that result in Python).
CONTROL_CHARACTER = r"[\x01-\x1f\x7f-\x9f]"


def latest_allowed(now: int) -> int:
    """The latest timestamp a row may hold as of ``now`` (Unix seconds): clock skew allowed."""
    return now + CLOCK_SKEW


def problem_sql(latest: str = ":latest", *, nicknames: bool = True) -> str:
    """A CASE giving the reason the row in scope breaks a rule, or NULL.

    The columns are referenced by their bare names (``staged_accounts``' columns);
    ``latest`` is the SQL of :func:`latest_allowed` (a bind parameter by default).
    ``nicknames=False`` leaves out the nickname rules (the last ones, about half the
    cost of the whole CASE): for rows whose nicknames are known to pass them.
    """
    first = FIRST_CREATED_AT
    branches = [
        (
            f"battles NOT BETWEEN 0 AND {MAX_BATTLES}",
            f"format('battles %s not within 0..{MAX_BATTLES}', battles)",
        )
    ]
    for name in COUNTERS:
        if name == "battles":  # within 0..MAX_BATTLES here: its own bounds cannot fail
            continue
        per = COUNTER_PER_BATTLE[name]
        limit = "battles" if per == 1 else f"{per} * battles"
        branches.append((f"{name} < 0", f"format('{name} %s is negative', {name})"))
        branches.append(
            (
                f"{name} > {limit}",
                f"format('{name} %s above %s ({per} per battle)', {name}, {limit})",
            )
        )
    earliest = f"coalesce(created_at, {first})"
    branches += [
        ("wins + losses + draws > battles", "'wins + losses + draws above battles'"),
        ("hits > shots", "format('hits %s above shots %s', hits, shots)"),
        (
            f"created_at NOT BETWEEN {first} AND {latest}",
            f"format('created_at %s not within {first}..%s', created_at, {latest})",
        ),
        (
            # 0 or NULL: never played (NULL <> 0 is NULL, which CASE takes as false)
            f"last_battle_time <> 0 AND last_battle_time NOT BETWEEN {earliest} AND {latest}",
            f"format('last_battle_time %s not within %s..%s', last_battle_time, {earliest}, "
            f"{latest})",
        ),
    ]
    if nicknames:
        branches += _nickname_branches()
    whens = "\n".join(f"  WHEN {cond} THEN {reason}" for cond, reason in branches)
    return f"CASE\n{whens}\nEND"


def keep_sql(latest: str = ":latest", *, nicknames: bool = True) -> str:
    """True for a row that breaks no rule: ``(problem_sql(...)) IS NULL``, made cheap.

    The COPY's ``WHERE`` evaluates it for every row, while the client waits. A guard of
    the rules grouped (one ``least`` for the counters' lower bounds, one ``greatest`` per
    multiple of ``battles``) is about half the comparisons of the ``CASE``; only a row it
    does not pass (a rule broken, or a NULL somewhere) falls through to the ``CASE``. The
    guard is the conjunction of the negated branches, so guard true means no branch can
    hold: the result is always exactly ``problem IS NULL``. The executor stops an ``AND``
    at its first false term, so ``battles`` is bounded before it is multiplied, as in the
    ``CASE``; were it not, an overflow would refuse the COPY and the Python rules judge.
    """
    first = FIRST_CREATED_AT
    others = [c for c in COUNTERS if c != "battles"]
    by_multiple: dict[int, list[str]] = {}
    for name in others:
        by_multiple.setdefault(COUNTER_PER_BATTLE[name], []).append(name)
    terms = [f"battles BETWEEN 0 AND {MAX_BATTLES}", f"least({', '.join(others)}) >= 0"]
    for per, names in sorted(by_multiple.items()):
        limit = "battles" if per == 1 else f"{per} * battles"
        most = names[0] if len(names) == 1 else f"greatest({', '.join(names)})"
        terms.append(f"{most} <= {limit}")
    terms += [
        "wins + losses + draws <= battles",
        "hits <= shots",
        f"created_at BETWEEN {first} AND {latest}",
        f"(last_battle_time = 0 OR last_battle_time BETWEEN coalesce(created_at, {first}) "
        f"AND {latest})",
    ]
    if nicknames:
        terms += [
            f"char_length(nickname) BETWEEN 1 AND {MAX_NICKNAME}",
            f"nickname !~ '{CONTROL_CHARACTER}'",
        ]
    guard = " AND ".join(terms)
    return f"({guard}) OR ({problem_sql(latest, nicknames=nicknames)}) IS NULL"


def _nickname_branches() -> list[tuple[str, str]]:
    return [
        (
            f"char_length(nickname) NOT BETWEEN 1 AND {MAX_NICKNAME}",
            f"format('nickname length %s not within 1..{MAX_NICKNAME}', char_length(nickname))",
        ),
        (
            f"nickname ~ '{CONTROL_CHARACTER}'",
            "'nickname holds control character U+' || lpad(upper(to_hex(ascii("
            f"substring(nickname FROM '{CONTROL_CHARACTER}')))), 4, '0')",
        ),
    ]
