"""``battletracker ranges show|set``: the live id ranges of both platforms."""

from __future__ import annotations

import click

from ..settings import SettingsError, parse_range
from .cli_common import emit, settings_of

__all__ = ["ranges_cli"]


@click.group("ranges")
def ranges_cli() -> None:
    """Show or set the account id ranges crawled each night."""


@ranges_cli.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ranges_show(ctx: click.Context, as_json: bool) -> None:
    """Both platforms' live ranges and their latest change."""
    from ..db import session_scope
    from .ranges import show_ranges

    settings = settings_of(ctx)
    with session_scope(settings) as session:
        rows = show_ranges(session, settings)
    text = "\n".join(
        f"{r.platform:<5} {r.min_id}-{r.max_id} ({r.max_id - r.min_id + 1} ids), "
        f"{r.changes} change(s)"
        + (f", last {r.last_change.get('date')}: {r.last_change.get('from')} -> "
           f"{r.last_change.get('to')}" if r.last_change else "")
        for r in rows)
    emit([r.as_json() for r in rows], as_json, text)


@ranges_cli.command("set")
@click.argument("platform", type=click.Choice(["xbox", "ps"]))
@click.argument("id_range", metavar="MIN-MAX")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ranges_set(ctx: click.Context, platform: str, id_range: str, as_json: bool) -> None:
    """Set PLATFORM's range to MIN-MAX from the next cycle on (history is kept)."""
    from ..db import session_scope
    from .ranges import RangeError, set_range

    settings = settings_of(ctx)
    try:
        wanted = parse_range("MIN-MAX", id_range)
        with session_scope(settings) as session:
            row = set_range(session, settings, platform, wanted.min_id, wanted.max_id)
    except (SettingsError, RangeError) as exc:
        raise click.BadParameter(str(exc), param_hint="MIN-MAX") from None
    change = row.last_change or {}
    emit(row.as_json(), as_json,
         f"{platform} range is now {row.min_id}-{row.max_id} (was {change.get('min_from')}-"
         f"{change.get('from')}); the next cycle uses it")
