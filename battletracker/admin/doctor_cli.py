"""``battletracker doctor [--json]``: every check, then exit 1 if any found an error."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_common import emit, settings_of

__all__ = ["doctor_command"]

_MARK = {"ok": "ok  ", "warning": "WARN", "error": "FAIL", "skipped": "skip"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--disk", "disk_paths", multiple=True, type=click.Path(exists=True),
              help="Paths whose free space to check (default: the current directory).")
@click.option("--skip", multiple=True,
              type=click.Choice(["database", "broker", "keys", "elasticsearch", "disk"]),
              help="Leave a group of checks out.")
@click.pass_context
def doctor_command(ctx: click.Context, as_json: bool, disk_paths: tuple[str, ...],
                   skip: tuple[str, ...]) -> None:
    """Check the installation: database, roles, broker, keys, Elasticsearch, clock, disk."""
    from .doctor import run_checks

    checks = run_checks(settings_of(ctx), disk_paths=[Path(p) for p in disk_paths or ["."]],
                        skip=skip)
    failed = [c for c in checks if c.status == "error"]
    lines = []
    for c in checks:
        lines.append(f"{_MARK[c.status]} {c.name:<26} {c.detail}")
        if c.fix:
            lines.append(f"     {'':<26} fix: {c.fix}")
    lines.append(f"{len(failed)} problem(s)" if failed else "everything looks fine")
    emit({"ok": not failed, "checks": [c.as_json() for c in checks]}, as_json, "\n".join(lines))
    if failed:
        sys.exit(1)
