"""The operator's day-two commands: ranges, cycle list, export, doctor (``battletracker …``)."""

from __future__ import annotations

from .cycles import cycle_list
from .doctor_cli import doctor_command
from .export_cli import export_cli
from .ranges_cli import ranges_cli

__all__ = ["cycle_list", "doctor_command", "export_cli", "ranges_cli"]
