"""``battletracker cycle list``: recent nights in one table, with their failed chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .cli_common import emit, settings_of

if TYPE_CHECKING:  # the CLI imports this module on a node's slim install too
    from sqlalchemy.orm import Session

__all__ = ["cycle_list", "list_cycles"]


def list_cycles(session: Session, *, limit: int = 30) -> list[dict[str, Any]]:
    """The latest ``limit`` cycles, newest first, as JSON-ready rows."""
    from sqlalchemy import func, select

    from ..models import Chunk, ChunkStatus, Cycle

    failed = (select(func.count()).where(Chunk.cycle_id == Cycle.id,
                                         Chunk.status == ChunkStatus.failed)
              .correlate(Cycle).scalar_subquery())
    rows = session.execute(
        select(Cycle, failed.label("failed")).order_by(Cycle.date.desc()).limit(limit)).all()
    out = []
    for c, n_failed in rows:
        end = c.finished_at
        out.append({
            "id": c.id, "date": c.date.isoformat(), "status": c.status.value,
            "chunks_stored": c.chunks_stored, "chunks_total": c.chunks_total,
            "chunks_failed": int(n_failed), "accounts": c.accounts,
            "changed_players": c.changed_players, "new_players": c.new_players,
            "rejected_results": c.rejected_results,
            "started_at": c.started_at.isoformat(),
            "finished_at": end.isoformat() if end else None,
            "hours": round((end - c.started_at).total_seconds() / 3600, 2) if end else None,
        })
    return out


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


@click.command("list")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def cycle_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Recent cycles, newest first: status, chunks, failed chunks, accounts, duration."""
    from ..db import session_scope

    with session_scope(settings_of(ctx)) as session:
        rows = list_cycles(session, limit=limit)
    header = f"{'date':<10} {'status':<9} {'chunks':>13} {'failed':>6} {'accounts':>10} hours"
    lines = [header] + [
        f"{r['date']:<10} {r['status']:<9} {r['chunks_stored']:>6}/{r['chunks_total']:<6} "
        f"{r['chunks_failed']:>6} {r['accounts']:>10} {_or_dash(r['hours'])}"
        for r in rows]
    if any(r["chunks_failed"] for r in rows):
        lines.append("failed chunks: battletracker cycle retry --date DATE hands them out again")
    emit(rows, as_json, "\n".join(lines) if rows else "no cycle yet")
