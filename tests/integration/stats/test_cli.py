"""``battletracker stats materialise`` builds the boards of a date."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from battletracker.db import engine_for
from battletracker.stats.cli import stats_cli

from .data import build, insert

pytestmark = pytest.mark.integration


def test_materialise_command(db_settings, monkeypatch):
    data = build(seed=4, n_players=60)
    with engine_for(db_settings).begin() as conn:
        insert(conn, data)
    monkeypatch.setenv("BATTLETRACKER_DATABASE_URL", db_settings.database_url)
    runner = CliRunner()
    result = runner.invoke(stats_cli, ["materialise", "--date", data.as_of.isoformat(),
                                       "--board", "battles", "--window", "all"])
    assert result.exit_code == 0, result.output
    assert "battles all" in " ".join(result.output.split())
    older = runner.invoke(stats_cli, ["materialise", "--date", "2026-01-01",
                                      "--board", "battles", "--window", "all"])
    assert "skipped" in older.output
    bad = runner.invoke(stats_cli, ["materialise", "--date", "2026-01-01", "--window", "year"])
    assert bad.exit_code == 2
