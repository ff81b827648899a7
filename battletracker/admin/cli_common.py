"""What the operator commands share: the settings of the invocation, JSON or text output."""

from __future__ import annotations

import json
from typing import Any

import click

from ..clicontext import settings_of

__all__ = ["emit", "settings_of"]


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human ``text``."""
    click.echo(json.dumps(data, default=str) if as_json else text)
