"""``battletracker export``: re-export a day to Elasticsearch, load Kibana's objects."""

from __future__ import annotations

import datetime as dt
import sys

import click

from .cli_common import emit, settings_of

__all__ = ["export_cli"]


@click.group("export", invoke_without_command=True)
@click.option("--date", "date_text", help="Day to export (YYYY-MM-DD; default: the latest "
              "cycle's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def export_cli(ctx: click.Context, date_text: str | None, as_json: bool) -> None:
    """Export a day's rows to Elasticsearch again (documents are overwritten, never doubled).

    The cycle's status is left alone: this repairs an index, it does not finish a night.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import select

    from ..db import session_scope
    from ..models import Cycle
    from ..pipeline.export import CycleNotFound, ExportError, cycle_id_of, export_cycle

    settings = settings_of(ctx)
    if settings.elasticsearch_url is None:
        raise click.UsageError("elasticsearch_url is not set: nothing to export to")
    try:
        if date_text is None:
            with session_scope(settings) as session:
                latest = session.execute(select(Cycle.date).order_by(Cycle.date.desc())
                                         .limit(1)).scalar_one_or_none()
            if latest is None:
                raise CycleNotFound("no cycle yet")
            day = latest
        else:
            try:
                day = dt.date.fromisoformat(date_text)
            except ValueError:
                raise click.BadParameter(f"{date_text!r} is not a date (YYYY-MM-DD)",
                                         param_hint="--date") from None
        report = export_cycle(settings, cycle_id_of(settings, day))
    except CycleNotFound as exc:
        raise click.ClickException(str(exc)) from None
    except ExportError as exc:
        raise click.ClickException(f"{exc}\nfix: battletracker doctor says what is wrong "
                                   "with Elasticsearch") from None
    docs = ", ".join(f"{index} {n}" for index, n in report.documents.items())
    text = f"exported {day}: {docs}"
    if not report.ok:
        text += f"\nrejected: {dict(report.failed)}; first: {report.errors[0]}"
    emit(report.as_dict(), as_json, text)
    if not report.ok:
        sys.exit(1)


@export_cli.command("kibana")
@click.option("--url", "kibana_url", help="Kibana's URL (default: the kibana_url setting).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def export_kibana(ctx: click.Context, kibana_url: str | None, as_json: bool) -> None:
    """Install the index templates and lifecycle policy, then load Kibana's data views and
    the activity dashboard (loading again replaces them)."""
    from elasticsearch import ApiError, TransportError

    from ..elastic.client import connect
    from ..elastic.kibana import KibanaError, import_objects
    from ..elastic.templates import install

    settings = settings_of(ctx)
    url = kibana_url or settings.kibana_url
    if url is None:
        raise click.UsageError("no Kibana URL: pass --url or set kibana_url")
    lines = []
    if settings.elasticsearch_url is not None:
        try:
            client = connect(settings)
            try:
                setup = install(client, settings)
            finally:
                client.close()
        except (ApiError, TransportError) as exc:
            raise click.ClickException(f"Elasticsearch: {exc}") from None
        lines.append(f"templates installed: {', '.join(setup.templates) or 'all current'}; "
                     f"lifecycle policy {'installed' if setup.policy else 'current'}")
    try:
        answer = import_objects(url)
    except KibanaError as exc:
        raise click.ClickException(str(exc)) from None
    lines.append(f"Kibana: {answer['successCount']} saved objects loaded "
                 "(dashboard 'battletracker: activity per day')")
    emit(answer, as_json, "\n".join(lines))
