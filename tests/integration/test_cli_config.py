"""Every command reads the root ``--config``: ``cycle``, ``stats`` and ``web`` alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from battletracker.cli import main
from battletracker.db import engine_for
from battletracker.settings import Settings
from tests.common.services import run_cli

pytestmark = pytest.mark.integration


def test_stats_materialise_uses_the_database_of_the_root_config(
    db_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "battletracker.toml"
    config.write_text(f'[battletracker]\ndatabase_url = "{db_settings.database_url}"\n')
    # no BATTLETRACKER_DATABASE_URL: only the file names the database
    out = run_cli("--config", str(config), "stats", "materialise", "--date", "2026-03-01",
                  "--board", "battles", "--window", "day", env={})  # fmt: skip
    assert "battles" in out and "ranked" in out
    with engine_for(db_settings).connect() as conn:
        built = conn.execute(text("SELECT board, time_window, as_of FROM leaderboard_builds")).all()
        activity = conn.execute(text("SELECT count(*) FROM daily_activity")).scalar_one()
    assert [(b, w, str(d)) for b, w, d in built] == [("battles", "day", "2026-03-01")]
    assert activity == 2


@pytest.mark.parametrize("command", [["web"], ["stats", "materialise", "--date", "2026-03-01"],
                                     ["cycle", "status"]])  # fmt: skip
def test_a_bad_root_config_stops_every_command(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[battletracker]\nno_such_setting = 1\n")
    result = CliRunner().invoke(main, ["--config", str(config), *command])
    assert result.exit_code == 2, result.output
    assert "bad settings" in result.output and "no_such_setting" in result.output
