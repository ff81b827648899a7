"""A third-party scorer, installed by pip as its own distribution, becomes a board.

The distribution is a wheel written here (no build backend, no network) and installed
with ``pip install --target`` into a temporary directory put on ``sys.path``: a real
pip-installed distribution with its own ``entry_points.txt``, discovered through
``importlib.metadata`` like any other, but never written into the shared virtualenv
where it would show up in other people's concurrent test runs.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from battletracker.db import engine_for
from battletracker.stats import queries
from battletracker.stats.interfaces import WINDOWS
from battletracker.stats.materialise import materialise
from battletracker.stats.registry import default_registry

from .data import brute_force, build, insert

pytestmark = pytest.mark.integration

MODULE = textwrap.dedent(
    '''
    """Scorers of a package that knows nothing of battletracker's base classes."""

    class XpPerBattle:
        """Python only: materialised through the fallback."""
        name = "xp_per_battle"
        title = "XP per battle"
        description = "Experience per battle (at least 5 battles)."
        unit = "xp/battle"
        format = "{:.1f}"
        min_battles = 5

        def score(self, counters):
            if counters["battles"] < self.min_battles:
                return None
            return counters["xp"] / counters["battles"]

        def sql_score(self):
            return None

        def sql_eligible(self):
            return None

    class Spotter:
        """With an SQL form: materialised in the database."""
        name = "spots"
        title = "Spots"
        description = "Enemies spotted (at least 1 battle)."
        unit = "spots"
        format = "{:.0f}"
        min_battles = 1

        def score(self, counters):
            return float(counters["spotted"]) if counters["battles"] >= 1 else None

        def sql_score(self):
            return "spotted::float8"

        def sql_eligible(self):
            return "battles >= 1"

    SPOTTER = Spotter()
    '''
)

ENTRY_POINTS = textwrap.dedent(
    """
    [battletracker.leaderboards]
    xp_per_battle = bt_extra_scorers:XpPerBattle
    spots = bt_extra_scorers:SPOTTER
    broken = bt_extra_scorers:DoesNotExist
    """
)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(folder: Path) -> Path:
    dist = "bt_extra_scorers-0.1.0.dist-info"
    files = {
        "bt_extra_scorers/__init__.py": MODULE.encode(),
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: bt-extra-scorers\nVersion: 0.1.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: battletracker-tests\n"
                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": ENTRY_POINTS.encode(),
    }
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist}/RECORD,,"]
    path = folder / "bt_extra_scorers-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[Path]:
    wheel = write_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        check=True,
    )
    assert (target / "bt_extra_scorers-0.1.0.dist-info" / "entry_points.txt").is_file()
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    default_registry().reload()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("bt_extra_scorers", None)
        default_registry().reload()


def test_plugin_scorers_become_boards(installed_plugin, db_settings):
    names = [b.name for b in queries.list_boards()]
    assert names[:5] == ["battles", "win_rate", "avg_damage", "frags_per_battle",
                         "survival_rate"]
    assert sorted(names[5:]) == ["spots", "xp_per_battle"]
    assert any("broken" in e for e in default_registry().errors)
    info = queries.board_info("xp_per_battle")
    assert (info.title, info.unit, info.min_battles) == ("XP per battle", "xp/battle", 5)

    data = build(seed=3, n_players=150)
    engine = engine_for(db_settings)
    with engine.begin() as conn:
        insert(conn, data)
    results = materialise(engine, data.as_of)  # every registered board, plugins included
    methods = {(r.board, r.window): r.method for r in results}
    assert {methods["xp_per_battle", w] for w in WINDOWS} == {"python"}
    assert {methods["spots", w] for w in WINDOWS} == {"sql"}

    with Session(engine) as session:
        for board in ("xp_per_battle", "spots"):
            scorer = default_registry().scorer(board)
            for window in WINDOWS:
                for platform in ("all", "xbox", "ps"):
                    want = brute_force(data.window_counters(window), scorer, platform, window)
                    page = queries.top(session, board, window, platform, limit=500)
                    got = [(e.rank, e.account_id, e.score, e.battles) for e in page.entries]
                    assert got == want and page.total == len(want), (board, window, platform)


def test_uninstalled_plugin_board_is_unknown_again(db_settings):
    # the previous test's cleanup removed the distribution from sys.path
    assert "xp_per_battle" not in [b.name for b in queries.list_boards()]
    with engine_for(db_settings).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM leaderboard_builds")).scalar() == 0
