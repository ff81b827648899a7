"""Daily activity per platform, materialised once per cycle date into ``daily_activity``.

What the community has long charted from the original tracker's data, per date and
platform:

* ``active_accounts``: ``diff_battles`` rows of that date with ``battles > 0``;
* ``battles``: the sum of those rows' battles;
* ``new_accounts``: players whose ``created_at`` (the account's creation time reported by
  the API, Unix seconds) falls on that UTC date. Chosen over "first ``total_battles``
  row on that date" because the latter counts every known account as new on the first
  night the tracker runs (and again whenever a range grows over old accounts), while
  ``created_at`` is the real creation day. Its cost: an account created on a date but
  first crawled later is only counted if the date is materialised again
  (``battletracker stats materialise --date``), and accounts whose ``created_at`` is
  unknown are never counted;
* ``unique_7d`` / ``unique_30d`` / ``unique_90d``: distinct accounts active on at least
  one day of the 7/30/90 days ending on that date.

``sum`` of bigint is numeric in PostgreSQL; the validation bounds (at most 2 M battles
per account, :mod:`battletracker.validation`) keep the sum far below 2^63, and the
``LEAST`` guard keeps even a row that slipped past them from failing the night.

The platforms' numbers add up to the total (an account has one platform), so no ``all``
row is stored. Computed set-based over at most 90 days of diffs: an account's last
active day in the range, counted under three filters -- one hash aggregate, not three
``count(DISTINCT)`` sorts, keyed by the account alone (its platform is its id's). Too
slow to run per web request at full scale (tens of millions of diff rows), which is why
it is materialised.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, text

from ..constants import platform_sql

__all__ = ["materialise_activity"]

_EPOCH = dt.date(1970, 1, 1)
#: An account's platform from its id, the rule every stage uses: grouping the 90 days
#: by the id alone keeps the aggregate's state small (no text ``min`` per row).
_PLATFORM = platform_sql("account_id")


def _unix(day: dt.date) -> int:
    return (day - _EPOCH).days * 86_400


def materialise_activity(conn: Connection, day: dt.date) -> None:
    """(Re)compute ``daily_activity`` for ``day``, inside the caller's transaction."""
    conn.execute(
        text(
            f"""
            INSERT INTO daily_activity AS a (date, platform, active_accounts, battles,
                new_accounts, unique_7d, unique_30d, unique_90d, computed_at)
            WITH plats(platform) AS (VALUES ('xbox'), ('ps')),
            today AS (
                SELECT platform::text AS platform, count(*) AS active,
                       LEAST(sum(battles), 9223372036854775807)::bigint AS battles
                FROM diff_battles
                WHERE date = :day AND battles > 0
                GROUP BY 1
            ),
            recent AS (
                SELECT {_PLATFORM} AS platform,
                       count(*) FILTER (WHERE last_active >= :d7) AS u7,
                       count(*) FILTER (WHERE last_active >= :d30) AS u30,
                       count(*) AS u90
                FROM (
                    SELECT account_id, max(date) AS last_active
                    FROM diff_battles
                    WHERE date BETWEEN :d90 AND :day AND battles > 0
                    GROUP BY account_id
                ) per_account
                GROUP BY 1
            ),
            created AS (
                SELECT platform::text AS platform, count(*) AS n
                FROM players
                WHERE created_at >= :t0 AND created_at < :t1
                GROUP BY 1
            )
            SELECT :day, p.platform, coalesce(today.active, 0), coalesce(today.battles, 0),
                   coalesce(created.n, 0), coalesce(recent.u7, 0), coalesce(recent.u30, 0),
                   coalesce(recent.u90, 0), now()
            FROM plats p
            LEFT JOIN today USING (platform)
            LEFT JOIN recent USING (platform)
            LEFT JOIN created USING (platform)
            ON CONFLICT (date, platform) DO UPDATE SET
                active_accounts = excluded.active_accounts, battles = excluded.battles,
                new_accounts = excluded.new_accounts, unique_7d = excluded.unique_7d,
                unique_30d = excluded.unique_30d, unique_90d = excluded.unique_90d,
                computed_at = excluded.computed_at
            """
        ),
        {
            "day": day,
            "d7": day - dt.timedelta(days=6),
            "d30": day - dt.timedelta(days=29),
            "d90": day - dt.timedelta(days=89),
            "t0": _unix(day),
            "t1": _unix(day + dt.timedelta(days=1)),
        },
    )
