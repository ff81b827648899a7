"""Nickname search from the header, the API explorer offline under the CSP, and the
Wargaming sign-in as a player clicks through it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from battletracker.settings import ApiKey, Settings
from battletracker.wargaming.simulator import Population, Simulator, serve
from battletracker.web.server import serve_in_thread
from tests.integration.web.dataset import Dataset

from .conftest import ARTIFACTS, Watched

pytestmark = pytest.mark.browser


def test_search_from_the_header(watched: Watched, data: Dataset) -> None:
    w = watched
    w.page.goto("/boards")
    box = w.page.locator("header form.search input[name=q]")
    box.fill("ps_tanker_41")
    box.press("Enter")
    w.page.wait_for_url("**/players?q=ps_tanker_41**")
    rows = w.page.locator("#matches tbody tr")
    assert rows.count() > 0
    names = rows.locator("td:first-child").all_inner_texts()
    assert all(n.lower().startswith("ps_tanker_41") for n in names), names
    assert names == sorted(names, key=str.lower)
    w.screenshot("search")
    # the platform selector reloads the results (a /static script, not an inline handler)
    w.page.select_option("#search-form select[name=platform]", "xbox")
    w.page.wait_for_url("**platform=xbox**")
    assert w.page.locator("#no-match").count() == 1
    w.page.go_back()
    w.page.wait_for_selector("#matches")
    w.page.locator("#matches tbody tr a").first.click()
    w.page.wait_for_url("**/players/*")
    assert w.page.locator("h1").inner_text().lower().startswith("ps_tanker_41")
    w.assert_clean()


def test_api_explorer_works_offline(watched: Watched) -> None:
    w = watched
    w.page.goto("/api/docs")
    w.page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    paths = w.page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/players" in p for p in paths), paths
    assert any("/api/v1/boards/{board}" in p.replace("\u200b", "") for p in paths), paths
    w.screenshot("api-explorer")
    # try one operation from the explorer against this app
    w.page.locator(".opblock-summary-path", has_text="/api/v1/cycles/current").first.click()
    w.page.get_by_role("button", name="Try it out").first.click()
    w.page.locator("button.execute").first.click()
    w.page.wait_for_selector(".live-responses-table tbody .response-col_status", timeout=10_000)
    status = w.page.locator(".live-responses-table tbody .response-col_status").first
    assert "200" in status.inner_text()
    w.screenshot("api-explorer-tried")
    w.assert_clean()


def test_wargaming_sign_in_in_the_browser(browser: Browser, populated: tuple[Settings, Dataset]
                                          ) -> None:
    """The whole redirect flow against the simulator over HTTP, as a player clicks it."""
    settings, data = populated
    sim = Simulator(Population(seed=3, xbox_ids=2_000, ps_ids=2_000),
                    keys={"crawlkey": 10.0, "signinapp": 50.0})
    account = next(a for a in data.nickname if a < 1_000_000_000)
    sim.login_account = account  # the simulator signs in a player the dashboard knows
    nickname = sim.population.account(account, sim.day)
    with serve(sim) as running:
        web = serve_in_thread(settings.replace(
            wg_openid_url=running.url + "auth/login/", wg_api_url=running.url,
            wg_keys=(ApiKey("crawlkey", 10.0),), wg_signin_app_id="signinapp"))
        context = browser.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto("/")
            page.get_by_role("link", name="Sign in with Wargaming").click()
            page.wait_for_url("**/me")
            assert nickname is not None
            assert nickname["nickname"] in page.locator("header .who").inner_text()
            assert "This is you" in page.content()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "signed-in-me.png"), full_page=True)
            page.get_by_role("button", name="Log out").click()
            page.wait_for_url(web.url + "/")
            page.goto("/me")
            assert "/login" in page.url
        finally:
            context.close()
            web.stop()
