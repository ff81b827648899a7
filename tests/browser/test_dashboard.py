"""The dashboard, a leaderboard and a player page in headless Chromium: charts drew."""

from __future__ import annotations

import pytest

from tests.integration.web.dataset import Dataset

from .conftest import Watched

pytestmark = pytest.mark.browser


def drawn_paths(w: Watched, chart_id: str, css: str = "path") -> list[str]:
    """The ``d`` of every path the chart module drew in one chart."""
    box = w.page.locator(f"#{chart_id}-box")
    box.locator("svg").wait_for(timeout=5_000)
    return [p.get_attribute("d") or "" for p in box.locator(f"svg {css}").all()]


def test_dashboard(watched: Watched) -> None:
    w = watched
    w.page.goto("/")
    assert w.page.title().startswith("Dashboard")
    w.page.wait_for_selector("#chart-unique-box[data-drawn]")
    # Tonight's progress.
    assert w.page.locator('[data-field="chunks_stored"]').inner_text() == "25"
    assert w.page.locator('[data-field="nodes_online"]').inner_text() == "3"
    # Each activity chart drew a non-empty line per platform (unique: 7/30/90 days).
    for chart, lines in (("active", 2), ("battles", 2), ("new", 2), ("avg", 2), ("unique", 3)):
        paths = drawn_paths(w, f"chart-{chart}", "path.bt-line")
        assert len(paths) == lines, chart
        assert all(d.startswith("M") and d.count("L") >= 10 for d in paths), chart
    # The refresh module fetches the progress from the API.
    w.page.evaluate("""() => fetch('/api/v1/cycles/current').then(r => r.json())""")
    w.screenshot("dashboard")
    w.assert_clean()


def test_leaderboard(watched: Watched) -> None:
    w = watched
    w.page.goto("/boards")
    w.page.get_by_role("link", name="Win rate").click()
    w.page.wait_for_url("**/boards/win_rate")
    rows = w.page.locator("table.board tbody tr")
    assert rows.count() == 50
    assert rows.first.locator("td").first.inner_text() == "1"
    bars = drawn_paths(w, "chart-scores", "path.bt-bar")
    assert len(bars) == 50 and all(d.startswith("M") and d.endswith("Z") for d in bars)
    # Selectors reload the board: Xbox players only, over the last month.
    w.page.select_option("select[name=platform]", "xbox")
    w.page.wait_for_url("**platform=xbox**")
    w.page.select_option("select[name=window]", "month")
    w.page.wait_for_url("**window=month**")
    platforms = w.page.locator("table.board tbody tr td:nth-child(3)").all_inner_texts()
    assert platforms and set(platforms) == {"xbox"}
    # Pagination.
    w.page.locator("a[rel=next]").click()
    w.page.wait_for_url("**page=2**")
    assert w.page.locator("table.board tbody tr").first.locator("td").first.inner_text() == "51"
    w.page.wait_for_selector("#chart-scores-box[data-drawn]")
    w.screenshot("leaderboard")
    w.assert_clean()


def test_player_page(watched: Watched, data: Dataset) -> None:
    w = watched
    aid = max(data.current, key=lambda a: sum(1 for (x, _) in data.diffs if x == a))
    w.page.goto(f"/players/{aid}")
    assert data.nickname[aid] in w.page.locator("h1").inner_text()
    for chart in ("battles", "total", "winrate", "damage"):
        w.page.wait_for_selector(f"#chart-{chart}-box[data-drawn]")
        paths = drawn_paths(w, f"chart-{chart}", "path.bt-line")
        assert len(paths) == 1 and paths[0].startswith("M") and paths[0].count("L") >= 5
    assert w.page.locator("#ranks tbody tr").count() >= 5
    w.screenshot("player")
    w.assert_clean()


def test_volunteers(watched: Watched) -> None:
    w = watched
    w.page.goto("/volunteers")
    assert w.page.locator("#credit tbody tr").count() == 3
    assert len(drawn_paths(w, "chart-credit", "path.bt-bar")) == 3
    w.screenshot("volunteers")
    w.assert_clean()
