"""Operator and guest logins through the browser's forms."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from .conftest import GUEST_PASSWORD, OPERATOR, Watched

pytestmark = pytest.mark.browser


def _submit(w: Watched, user: str, password: str) -> None:
    w.page.fill("input[name=username]", user)
    w.page.fill("input[name=password]", password)
    w.page.click("#login-form button[type=submit]")
    w.page.wait_for_load_state()


def test_operator_login(watched: Watched) -> None:
    w = watched
    w.page.goto("/operator")
    assert "/login" in w.page.url  # redirected
    _submit(w, OPERATOR[0], "not the password")
    assert w.page.locator("#login-error").inner_text() == "Wrong user name or password."
    assert "/login" in w.page.url
    w.screenshot("login-wrong-password")
    w.page.goto("/operator")
    assert "/login" in w.page.url  # still not logged in
    _submit(w, *OPERATOR)
    w.page.wait_for_url("**/operator")
    assert w.page.locator("h1").inner_text() == "Operator"
    assert w.page.locator("#cycles tbody tr").count() >= 10
    assert "SOURCE_NOT_AVAILABLE" in w.page.locator("#problem-chunks").inner_text()
    w.screenshot("operator")
    w.page.click("header form button")  # log out
    w.page.goto("/operator")
    assert "/login" in w.page.url
    w.assert_clean(allow=("status of 401",))  # the wrong password's answer


def test_guest_cannot_reach_operator_pages(browser: Browser, guest_app_url: str) -> None:
    context = browser.new_context(base_url=guest_app_url)
    w = Watched(context.new_page(), guest_app_url)
    try:
        w.page.goto("/")
        assert "/login" in w.page.url  # the guest login is on: nothing without it
        _submit(w, "guest", GUEST_PASSWORD)
        w.page.wait_for_selector("#chart-active-box[data-drawn]")
        assert w.page.locator("header .badge").inner_text() == "guest"
        w.page.goto("/operator")
        assert "/login" in w.page.url and "operator=1" in w.page.url
        assert "This page is for operators." in w.page.content()
        w.screenshot("guest-refused-operator")
        w.assert_clean()
    finally:
        context.close()
