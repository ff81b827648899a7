"""Every web module declares ``__all__``, and it names what the module defines."""

from __future__ import annotations

import importlib
import pkgutil

import battletracker.web


def test_all_matches_public_names() -> None:
    for info in pkgutil.walk_packages(battletracker.web.__path__, "battletracker.web."):
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert names is not None, info.name
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
