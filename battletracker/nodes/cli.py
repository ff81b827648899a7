"""Operator commands: ``battletracker nodes …`` (invite, approve, list, ban) and ``keys …``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["keys_cli", "nodes_cli"]


@contextmanager
def _service(ctx: click.Context) -> Iterator[Any]:
    from ..cli import _settings
    from ..db import session_scope
    from .services import node_service

    settings = _settings(ctx)
    with session_scope(settings) as session:
        yield node_service(session, settings)


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    import functools

    from .interfaces import NodeError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (NodeError, ValueError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from None

    return wrapper


@click.group("nodes")
def nodes_cli() -> None:
    """Volunteer nodes: invite, approve, list, ban."""


@nodes_cli.command("invite")
@click.option("--name", default=None, help="Public name the node gets (it may choose one).")
@click.pass_context
@_errors
def invite(ctx: click.Context, name: str | None) -> None:
    """Print a one-time invite code (valid 7 days)."""
    with _service(ctx) as svc:
        code = svc.invite(name)
    click.echo(code)


@nodes_cli.command("approve")
@click.argument("node_id", type=int)
@click.pass_context
@_errors
def approve(ctx: click.Context, node_id: int) -> None:
    """Let a waiting (or quarantined) node fetch."""
    with _service(ctx) as svc:
        node = svc.approve(node_id)
    click.echo(f"node {node.id} ({node.name}) approved")


@nodes_cli.command("ban")
@click.argument("node_id", type=int)
@click.option("--reason", default="banned by the operator")
@click.pass_context
@_errors
def ban(ctx: click.Context, node_id: int, reason: str) -> None:
    """Ban a node at once: broker access ends, its results are refused."""
    with _service(ctx) as svc:
        node = svc.ban(node_id, reason)
    click.echo(f"node {node.id} ({node.name}) banned")


@nodes_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@_errors
def list_nodes(ctx: click.Context, as_json: bool) -> None:
    """Nodes: state, version, last seen, keys and rate, credit, rejections, trust."""
    with _service(ctx) as svc:
        rows = svc.list_nodes()
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows]))
        return
    click.echo(f"{'id':>4} {'name':16} {'state':11} {'version':8} {'last seen':19} {'keys':14} "
               f"{'rps':>6} {'chunks':>7} {'accounts':>9} {'rejected':>8} trust")  # fmt: skip
    for r in rows:
        seen = r.last_seen.strftime("%Y-%m-%d %H:%M:%S") if r.last_seen else "-"
        keys = ",".join(str(k["app_id"]) for k in r.keys) or "-"
        click.echo(f"{r.id:>4} {r.name[:16]:16} {r.state:11} {(r.version or '-')[:8]:8} "
                   f"{seen:19} {keys[:14]:14} {r.rps:>6g} {r.chunks_stored:>7} "
                   f"{r.accounts_stored:>9} {r.rejected_results:>8} {r.trust:.2f}"
                   + (f"  ({r.note})" if r.note else ""))  # fmt: skip


@click.group("keys")
def keys_cli() -> None:
    """The operator's pool of API keys that nodes lease."""


@contextmanager
def _pool(ctx: click.Context) -> Iterator[Any]:
    from ..cli import _settings
    from ..db import session_scope
    from .services import KeyPool

    with session_scope(_settings(ctx)) as session:
        yield KeyPool(session)


@keys_cli.command("add")
@click.argument("app_id")
@click.option("--rps", type=float, default=10.0, show_default=True,
              help="Requests/s all nodes together may spend on this key.")  # fmt: skip
@click.pass_context
@_errors
def keys_add(ctx: click.Context, app_id: str, rps: float) -> None:
    """Add a key to the pool (or change its budget and enable it again)."""
    with _pool(ctx) as pool:
        pool.add(app_id, rps)
    click.echo(f"key {app_id[:4]}… added with {rps:g} rps")


@keys_cli.command("disable")
@click.argument("app_id")
@click.pass_context
@_errors
def keys_disable(ctx: click.Context, app_id: str) -> None:
    """Stop leasing a key: every node stops using it within one lease period."""
    with _pool(ctx) as pool:
        pool.disable(app_id)
    click.echo(f"key {app_id[:4]}… disabled")


@keys_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_errors
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """Keys, budgets, what is leased now, and how often nodes reported them unusable."""
    with _pool(ctx) as pool:
        rows = list(pool.list())
    if as_json:
        click.echo(json.dumps(rows))
        return
    for r in rows:
        click.echo(f"{str(r['app_id'])[:4]}… {r['state']:8} budget {r['rps']:g} rps, leased "
                   f"{r['leased_rps']:g}, unusable reports {r['unusable_reports']}")  # fmt: skip
