"""How the main pages look and whether assistive technology can use them.

Each page is captured 1280 and 390 px wide in tests/screenshots/ (git-ignored, for a person to look at), and axe-core
checks it at both widths: no `serious` or `critical` violation is allowed. A page made faulty on purpose shows that
the check can fail.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect

from .ui import NARROW, REPO, VENDOR, Server, Shoot, diagram_shown, first_task_url

AXE = next(
    (p for p in (VENDOR / "axe-core" / "axe.min.js", REPO / "node_modules" / "axe-core" / "axe.min.js") if p.exists()),
    None,
)
SignIn = Callable[[Page, str], Page]


def axe_violations(page: Page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
             const result = await axe.run(document, { resultTypes: ['violations'] });
             return result.violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').replace(/\\s+/g, ' '))
             }));
           }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def described(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']} ({v['help']}), {len(v['nodes'])} nodes:")
        lines += [f"    {node[:300]}" for node in v["nodes"][:8]]
    return "\n".join(lines)


def open_inbox(page: Page, server: Server, sign_in: SignIn) -> None:
    sign_in(page, "dana")
    page.goto(server("/"))
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.locator("table a[href^='/tasks/']").first).to_be_visible()


def open_task_form(page: Page, server: Server, sign_in: SignIn) -> None:
    sign_in(page, "dana")
    page.goto(first_task_url(page, server))
    expect(page.get_by_role("button", name="Approve")).to_be_visible()


def open_processes(page: Page, server: Server, sign_in: SignIn) -> None:
    sign_in(page, "alice")  # the analyst: the page with its upload form
    page.goto(server("/processes/"))
    expect(page.get_by_role("button", name="Upload and check")).to_be_visible()


def open_instance(page: Page, server: Server, sign_in: SignIn) -> None:
    sign_in(page, "sam")  # one of the demo's requests in flight: done, waiting and not-yet-run elements
    page.goto(server("/requests/"))
    in_flight = page.get_by_role("row").filter(has=page.locator(".status-active"))
    in_flight.first.locator("a[href^='/instances/']").first.click()
    diagram_shown(page)
    expect(page.locator(".djs-element.baton-active").first).to_be_attached()


PAGES = {"inbox": open_inbox, "task-form": open_task_form, "processes": open_processes, "instance": open_instance}


def test_axe_finds_what_it_should(browser: Browser) -> None:
    """The check below can fail: on a page with known faults, axe-core reports them as serious or critical."""
    if AXE is None:
        pytest.skip("axe-core is not installed (run .ci/vendor)")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content('<!doctype html><html><body><img src="x.png"><input type="text"></body></html>')
        found = {v["id"] for v in axe_violations(page)}
    finally:
        context.close()
    assert {"image-alt", "label", "html-has-lang"} <= found, found


@pytest.mark.parametrize("name", PAGES)
def test_page_looks_right_and_passes_axe(
    name: str, live_server: Server, page: Page, signed_in: SignIn, shoot: Shoot
) -> None:
    PAGES[name](page, live_server, signed_in)
    problems: dict[int, str] = {}

    def check(page: Page, width: int) -> None:
        if width == NARROW["width"]:  # nothing sticks out sideways on a phone: the page is as wide as the screen
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width} px wide"
        if AXE is not None and (found := axe_violations(page)):
            problems[width] = described(found)

    shots = shoot(page, name, check)
    assert all(p.stat().st_size > 10_000 for p in shots), shots
    if AXE is None:
        pytest.skip("axe-core is not installed (run .ci/vendor); screenshots taken")
    assert not problems, f"axe-core on {name}:\n" + "\n".join(f"at {w} px:\n{t}" for w, t in problems.items())
