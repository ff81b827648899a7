"""The registry: entry-point discovery, validation of plugins, named lookup errors."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from battletracker.stats import interfaces
from battletracker.stats import registry as registry_module
from battletracker.stats.builtin import BattlesScorer, RateStats
from battletracker.stats.interfaces import StatsError, UnknownBoard
from battletracker.stats.registry import Registry, valid_name


class Tiny(BattlesScorer):
    name = "tiny"


class Misnamed(BattlesScorer):
    name = "other"


class Handler(RateStats):
    name = "extra"


def _registry(scorers: dict[str, str], handlers: dict[str, str] | None = None) -> Registry:
    groups = {
        "s": [EntryPoint(n, v, "s") for n, v in scorers.items()],
        "h": [EntryPoint(n, v, "h") for n, v in (handlers or {}).items()],
    }
    return Registry(scorer_group="s", handler_group="h", discover=lambda g: groups[g])


HERE = __name__


def test_the_installed_builtins_are_found_through_entry_points():
    names = list(registry_module.scorers())
    assert names[:5] == ["battles", "win_rate", "avg_damage", "frags_per_battle",
                         "survival_rate"]
    assert registry_module.get_scorer("win_rate").min_battles == 100
    assert [h.name for h in registry_module.stat_handlers()][:2] == ["rates", "averages"]


def test_unknown_board_is_a_key_error_and_a_stats_error():
    reg = _registry({"tiny": f"{HERE}:Tiny"})
    assert reg.scorer("tiny").name == "tiny"
    with pytest.raises(UnknownBoard) as exc:
        reg.scorer("huge")
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, StatsError)
    assert str(exc.value) == "no leaderboard named 'huge'"
    with pytest.raises(KeyError):
        reg.scorer("huge")


def test_broken_plugins_are_skipped_and_reported():
    reg = _registry({
        "tiny": f"{HERE}:Tiny",
        "other": f"{HERE}:Tiny",            # name differs from the scorer's
        "missing": f"{HERE}:Nope",          # import fails
        "Bad-Name": f"{HERE}:Tiny",
        "misnamed": f"{HERE}:Misnamed",
    }, {"extra": f"{HERE}:Handler", "dup": "battletracker.stats.builtin:RateStats"})
    assert list(reg.scorers()) == ["tiny"]
    assert len(reg.errors) == 5
    assert [h.name for h in reg.handlers()] == ["rates", "averages", "extra"]


def test_loading_is_lazy_and_once():
    calls = []

    def discover(group):
        calls.append(group)
        return [EntryPoint("tiny", f"{HERE}:Tiny", group)] if group == "s" else []

    reg = Registry(scorer_group="s", handler_group="h", discover=discover)
    assert calls == []
    reg.scorers()
    reg.scorer("tiny")
    reg.handlers()
    assert calls == ["s", "h"]
    reg.reload()
    reg.scorers()
    assert calls == ["s", "h", "s", "h"]


@pytest.mark.parametrize("name", ["battles", "win_rate", "a1", "x" * 32])
def test_valid_names(name):
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "Battles", "1x", "a__b", "a_", "a-b", "x" * 33, "a b"])
def test_invalid_names(name):
    assert not valid_name(name)


def test_error_tree():
    assert issubclass(interfaces.UnknownPlayer, KeyError)
    for cls in (interfaces.UnknownWindow, interfaces.UnknownPlatform, interfaces.InvalidQuery):
        assert issubclass(cls, ValueError) and issubclass(cls, StatsError)
    assert issubclass(interfaces.ScorerError, StatsError)


@pytest.mark.parametrize("module", ["interfaces", "builtin", "registry", "materialise",
                                    "activity", "queries", "tasks", "cli", "bench"])
def test_all_names_what_the_module_defines(module):
    import importlib

    mod = importlib.import_module(f"battletracker.stats.{module}")
    assert all(hasattr(mod, n) for n in mod.__all__)
    public = {n for n, v in vars(mod).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == mod.__name__}
    assert public <= set(mod.__all__)


def test_the_longest_board_name_leaves_every_derived_name_within_postgres_limit():
    """A board's table, its partitions and their indexes, built aside as ``__new``,
    are PostgreSQL identifiers: past 63 bytes they would be cut and could collide."""
    from battletracker.stats.interfaces import WINDOWS
    from battletracker.stats.materialise import PARTITIONS, leaf_name, partition_name

    board = "b" * registry_module.MAX_NAME
    assert valid_name(board)
    names = []
    for window in WINDOWS:
        for table in (leaf_name(board, window), leaf_name(board, window) + "__new"):
            names.append(table)
            for platform, _ in PARTITIONS:
                part = partition_name(table, platform)
                names += [part, part + "__account", part + "__ranks"]
    assert max(len(n.encode()) for n in names) <= 63
