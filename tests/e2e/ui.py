"""What the browser tests share: where things are, the live server's handle, and page helpers.

A module of its own: a conftest.py is not meant to be imported by the tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from playwright.sync_api import Page, expect

REPO = Path(__file__).resolve().parents[2]
PROCESSES = REPO / "processes"
SCREENSHOTS = REPO / "tests" / "screenshots"
VENDOR = REPO / "web" / "static" / "vendor"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


class Shoot(Protocol):
    def __call__(self, page: Page, name: str, check: Callable[[Page, int], None] | None = None) -> list[Path]: ...


@dataclass
class Server:
    """A running `baton serve`: server("/path") is the full URL."""

    url: str
    database: str
    password: str
    log: Path

    def __call__(self, path: str = "/") -> str:
        return self.url + path


def diagram_shown(page: Page) -> None:
    """The bpmn-js viewer on the page has drawn its diagram (diagram.js adds diagram-ready, or diagram-failed)."""
    figure = page.locator(".diagram.diagram-ready, .diagram.diagram-failed").first
    expect(figure).to_be_visible(timeout=15_000)
    assert "diagram-ready" in (figure.get_attribute("class") or ""), figure.inner_text()
    expect(figure.locator(".djs-element").first).to_be_attached()


def open_task(page: Page, server: Server, item: str, timeout: float = 20) -> str:
    """Open the task about `item` from the inbox, reloading while the engine's worker moves the request on."""
    deadline = time.monotonic() + timeout
    page.goto(server("/"))
    link = page.get_by_role("link", name=item, exact=True)
    while not link.count():
        assert time.monotonic() < deadline, f"{item!r} never reached this inbox:\n{page.locator('main').inner_text()}"
        page.wait_for_timeout(500)
        page.reload()
    link.first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(item)
    return page.url


def csrf_token(page: Page) -> str:
    return page.locator("input[name=csrf_token]").first.input_value()


def first_task_url(page: Page, server: Server) -> str:
    """The first task in the signed-in user's inbox (one of the demo's requests in flight)."""
    page.goto(server("/"))
    link = page.locator("table a[href^='/tasks/']").first
    expect(link).to_be_visible()
    return server(link.get_attribute("href") or "")


def settled(page: Page) -> None:
    """Loaded, fonts ready, and every diagram on the page drawn (or given up on)."""
    page.wait_for_load_state("load")
    page.evaluate("document.fonts.ready.then(() => true)")
    pending = page.locator("[data-diagram]:not(.diagram-ready):not(.diagram-failed)")
    expect(pending).to_have_count(0, timeout=15_000)
