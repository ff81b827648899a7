"""``battletracker node …``: the commands a volunteer runs on their own machine."""

from __future__ import annotations

import click

from .commands import COMMANDS

__all__ = ["node_cli"]


@click.group("node", help="Run a volunteer node: register, run, check, status, services.")
def node_cli() -> None:
    pass


for _command in COMMANDS:
    node_cli.add_command(_command)
