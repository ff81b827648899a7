"""``python -m battletracker``: the ``battletracker`` command (how a node restarts itself)."""

from __future__ import annotations

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main(prog_name="battletracker")
