"""``battletracker stats ...``: materialise boards by hand, benchmark them.

``stats_cli`` is a click group; the CLI owner registers it on the ``battletracker``
command (``main.add_command(stats_cli, "stats")``).
"""

from __future__ import annotations

import datetime as dt

import click

from ..clicontext import settings_of
from .interfaces import WINDOWS

__all__ = ["stats_cli"]


@click.group("stats", help="Leaderboards and player stats.")
def stats_cli() -> None:
    pass


@stats_cli.command("materialise")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="Cycle date (YYYY-MM-DD) the boards are built for.")
@click.option("--board", "boards", multiple=True, help="Only this board (repeatable).")
@click.option("--window", "windows", multiple=True, type=click.Choice(WINDOWS),
              help="Only this window (repeatable).")
@click.option("--force", is_flag=True,
              help="Build even if the live boards are as of a later date.")
@click.option("--no-activity", is_flag=True, help="Skip the daily activity row.")
@click.pass_context
def materialise_cmd(
    ctx: click.Context,
    day: dt.datetime, boards: tuple[str, ...], windows: tuple[str, ...], force: bool,
    no_activity: bool,
) -> None:
    """Build every board x window (both platforms) and the daily activity for --date."""
    from ..db import engine_for
    from .materialise import materialise

    engine = engine_for(settings_of(ctx))
    results = materialise(
        engine, day.date(), boards=boards or None, windows=windows or WINDOWS,
        activity=not no_activity, force=force,
    )
    for r in results:
        if r.skipped:
            click.echo(f"{r.board:>20} {r.window:<6} skipped (live boards as of {r.as_of})")
        else:
            click.echo(
                f"{r.board:>20} {r.window:<6} {r.total:>10,} ranked "
                f"(xbox {r.total_xbox:,}, ps {r.total_ps:,}) {r.method} {r.seconds:.2f}s"
            )


@stats_cli.command("bench")
@click.option("--players", type=int, default=1_000_000, show_default=True)
@click.option("--days", type=int, default=30, show_default=True,
              help="Days of synthetic diffs.")
@click.option("--active", type=float, default=0.08, show_default=True,
              help="Share of players active on a day.")
@click.option("--lookups", type=int, default=2000, show_default=True,
              help="Lookups of each kind.")
@click.option("--database-url", default=None,
              help="Use this (empty, migrated) database instead of a throwaway one.")
@click.pass_context
def bench_cmd(ctx: click.Context, players: int, days: int, active: float, lookups: int,
              database_url: str | None) -> None:
    """Generate synthetic players and diffs, materialise, time lookups (p50/p99)."""
    from .bench import run

    run(players=players, days=days, active=active, lookups=lookups,
        database_url=database_url, echo=click.echo, settings=settings_of(ctx))
