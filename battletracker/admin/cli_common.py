"""What the operator commands share: the settings of the invocation, JSON or text output."""

from __future__ import annotations

import json
from typing import Any

import click

from ..settings import Settings

__all__ = ["emit", "settings_of"]


def settings_of(ctx: click.Context) -> Settings:
    """The settings of this invocation, loaded once by the root command (``--config``)."""
    from ..cli import _settings  # the root command's loader; imported late (no cycle)

    return _settings(ctx)


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human ``text``."""
    click.echo(json.dumps(data, default=str) if as_json else text)
