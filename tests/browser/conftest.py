"""Headless Chromium against the app served by uvicorn on a populated database.

Chromium is required: when ``/usr/bin/chromium`` (or ``$BATTLETRACKER_TEST_CHROMIUM``) is
missing these tests FAIL, so CI cannot go green without running them. Install it with
``apt-get install -y chromium`` (``playwright install`` is not needed or used).
Screenshots go to ``test-artifacts/`` (``$BATTLETRACKER_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, Route, sync_playwright

from battletracker.settings import Settings
from battletracker.testing.databases import temporary_database
from battletracker.web.auth import hash_password
from battletracker.web.secret import new_secret_key
from battletracker.web.server import ServerHandle, serve_in_thread
from tests.integration.web.dataset import Dataset, populate

CHROMIUM = os.environ.get("BATTLETRACKER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("BATTLETRACKER_TEST_ARTIFACTS", "test-artifacts"))
OPERATOR = ("olga", "operator pass phrase")
GUEST_PASSWORD = "shared guest secret"


# Package scope, not session: Playwright's sync API keeps an event loop running in the
# main thread until it stops, and later tests call asyncio.run().
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is required at {CHROMIUM} (apt-get install -y chromium)")
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(scope="module")
def populated() -> Iterator[tuple[Settings, Dataset]]:
    base = Settings(secret_key=new_secret_key(),
                    operators=((OPERATOR[0], hash_password(OPERATOR[1], iterations=1_000)),))
    with temporary_database(base) as settings:
        yield settings, populate(settings)


@pytest.fixture(scope="module")
def data(populated: tuple[Settings, Dataset]) -> Dataset:
    return populated[1]


@pytest.fixture(scope="module")
def app_url(populated: tuple[Settings, Dataset]) -> Iterator[str]:
    handle: ServerHandle = serve_in_thread(populated[0])
    yield handle.url
    handle.stop()


@pytest.fixture(scope="module")
def guest_app_url(populated: tuple[Settings, Dataset]) -> Iterator[str]:
    settings = populated[0].replace(guest_login=True, guest_password=GUEST_PASSWORD)
    handle = serve_in_thread(settings)
    yield handle.url
    handle.stop()


class Watched:
    """A page plus what went wrong on it: JS errors, console errors, outside requests."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(msg.text)
                if msg.type == "error" else None)
        host = urlsplit(origin).netloc

        def guard(route: Route, request: Request) -> None:
            if urlsplit(request.url).netloc == host:
                route.continue_()
            else:  # the page must work offline: nothing may leave the app's origin
                self.external.append(request.url)
                route.abort()

        page.route("**/*", guard)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, *, allow: tuple[str, ...] = ()) -> None:
        """No JS error, no console error (but those containing an ``allow`` text)."""
        errors = [e for e in self.errors if not any(a in e for a in allow)]
        assert errors == [], errors
        assert self.external == [], self.external


@pytest.fixture
def watched(browser: Browser, app_url: str) -> Iterator[Watched]:
    context = browser.new_context(base_url=app_url, viewport={"width": 1280, "height": 900})
    w = Watched(context.new_page(), app_url)
    yield w
    context.close()
