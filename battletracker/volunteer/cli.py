"""The ``battletracker node`` group: what a volunteer runs on their own machine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .api import ServerError
from .identity import IdentityError, default_dir

__all__ = ["node_cli"]

_DIR = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="BATTLETRACKER_NODE_DIR",
    help="Where the node keeps its identity and lease (default: the user's config dir).",
)  # fmt: skip


@click.group("node")
def node_cli() -> None:
    """This machine as a volunteer node: register, run, check, status, services."""


@node_cli.command("register")
@click.option("--server", required=True, help="The server's URL (https://…).")
@click.option("--invite", default=None, help="One-time code from the operator.")
@click.option("--name", default=None, help="Public name shown on the volunteers page.")
@_DIR
def register_command(server: str, invite: str | None, name: str | None,
                     directory: Path | None) -> None:  # fmt: skip
    """Enrol this machine; without an invite it waits for the operator's approval."""
    from .register import register

    directory = directory or default_dir()
    try:
        identity, state = register(server, directory, invite=invite, name=name)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"registered as node {identity.node_id} ({state}); identity in {directory}")
    if state != "approved":
        click.echo(f"waiting for the operator: battletracker nodes approve {identity.node_id}")


@node_cli.command("lease")
@_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the lease as JSON.")
def lease_command(directory: Path | None, as_json: bool) -> None:
    """Take a lease: this node's broker URL, keys and rates, expiry, required version."""
    from .lease import take_lease

    directory = directory or default_dir()
    try:
        lease = take_lease(directory)
    except (ServerError, IdentityError) as exc:
        raise click.ClickException(str(exc)) from None
    public = {k: v for k, v in lease.items() if k != "signing_key"}
    if as_json:
        click.echo(json.dumps(public))
        return
    keys = ", ".join(f"{k['app_id'][:4]}…:{k['rps']:g}" for k in lease["keys"]) or "none yet"
    click.echo(f"node {lease['node_id']} lease {lease['lease_id']} until {lease['expires_at']}"
               f"\n  keys {keys}\n  requires version {lease['required_version']}")  # fmt: skip


def _add_issue_14_commands() -> None:
    """run, check, status, install-service, uninstall-service (``volunteer/commands.py``)."""
    from .commands import COMMANDS

    for command in COMMANDS:
        node_cli.add_command(command)


_add_issue_14_commands()
