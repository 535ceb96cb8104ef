"""Fixtures for the browser tests (conftest.py takes them in when Chromium and Playwright are there)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from .ui import CHROMIUM, CHROMIUM_ARGS, NARROW, REPO, SCREENSHOTS, WIDE, Server, Shoot, settled

DEMO_PASSWORD = "e2e-demo-Passw0rd!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`baton serve --demo` on a fresh SQLite database and a free port; stopped after the session."""
    folder = tmp_path_factory.mktemp("live")
    database = f"sqlite:///{folder / 'baton.db'}"
    port = free_port()
    log = folder / "server.log"
    env = {**os.environ, "BATON_DEMO_PASSWORD": DEMO_PASSWORD, "BATON_DATABASE_URL": database}
    baton = [sys.executable, "-c", "import sys; from baton.engine.cli import main; sys.exit(main())"]
    command = [*baton, "--database", database, "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, whatever the env says
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"baton serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with direct.open(url + "/login", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"baton serve did not answer on {url} within 60 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield Server(url, database, DEMO_PASSWORD, log)
    finally:
        process.send_signal(signal.SIGINT)  # `baton serve` stops its worker and closes the engine on Ctrl+C
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page in a new browser context (its own cookies), 1280x900."""
    return context.new_page()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """More pages, each in its own context: several people signed in at once."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        contexts.append(browser.new_context(viewport=WIDE))
        contexts[-1].set_default_timeout(10_000)
        return contexts[-1].new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def sessions() -> dict[str, list[Any]]:
    """Each demo user's session cookie, once they signed in through the form (signing in takes a second)."""
    return {}


@pytest.fixture
def signed_in(live_server: Server, sessions: dict[str, list[Any]]) -> Callable[[Page, str], Page]:
    """signed_in(page, "alice"): the page's context signed in as a demo user, on the inbox.

    The first time for each user this goes through the login form; after that it reuses the session cookie.
    """

    def sign_in(page: Page, user: str) -> Page:
        if user in sessions:
            page.context.add_cookies(sessions[user])
            page.goto(live_server("/"))
            if "/login" not in page.url:
                return page
        page.goto(live_server("/login"))
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(live_server.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert "/login" not in page.url, f"{user} could not sign in: {page.locator('main').inner_text()[:500]}"
        sessions[user] = page.context.cookies()
        return page

    return sign_in


@pytest.fixture
def shoot() -> Shoot:
    """shoot(page, "inbox"): full-page screenshots 1280 and 390 px wide, tests/screenshots/inbox-1280.png and -390.

    The page is loaded again at each width (so a diagram fits itself to it, as on a phone): GET pages only.
    `check(page, width)`, if given, runs on the page at each width, after its screenshot.
    """

    def take(page: Page, name: str, check: Callable[[Page, int], None] | None = None) -> list[Path]:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        paths = []
        for size in (WIDE, NARROW):
            page.set_viewport_size(size)
            page.reload()
            settled(page)
            path = SCREENSHOTS / f"{name}-{size['width']}.png"
            page.screenshot(path=str(path), full_page=True)
            paths.append(path)
            if check:
                check(page, size["width"])
        page.set_viewport_size(WIDE)
        return paths

    return take
