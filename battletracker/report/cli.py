"""``battletracker report --date D --out FILE.png``: the daily report image."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

__all__ = ["report_command"]


@click.command("report")
@click.option("--date", "date_text", default=None,
              help="Day to report, YYYY-MM-DD (default: the latest with activity).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
@click.pass_context
def report_command(ctx: click.Context, date_text: str | None, out: Path) -> None:
    """Write the day's active accounts, battles and new accounts per platform, against
    the 30 days before, as a PNG image."""
    from ..cli import _settings
    from ..db import session_scope
    from . import NoReport, load_report, render_png, report_dates

    day = None
    if date_text is not None:
        try:
            day = dt.date.fromisoformat(date_text)
        except ValueError:
            raise click.BadParameter(f"{date_text!r} is not a date (YYYY-MM-DD)",
                                     param_hint="--date") from None
    settings = _settings(ctx)
    with session_scope(settings) as session:
        if day is None:
            latest = report_dates(session, limit=1)
            if not latest:
                raise click.ClickException("no night has finished yet: nothing to report")
            day = latest[0][0]
        try:
            report = load_report(session, day)
        except NoReport as exc:
            raise click.ClickException(str(exc)) from None
    png = render_png(report)
    out.write_bytes(png)
    click.echo(f"report of {day} written to {out} ({len(png):,} bytes)")
