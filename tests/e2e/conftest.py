"""The browser tests' fixtures (fixtures.py): a live server, Chromium, pages, signing in, screenshots.

Debian's Chromium (/usr/bin/chromium, installed by .ci/browsers) is driven by Playwright (the test extras);
Playwright's own browser download is never used: it cannot be fetched here. Without either, every test module in
this folder is reported as skipped, with the reason, and nothing here imports Playwright.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
MISSING = (
    "browser tests need Debian's Chromium at /usr/bin/chromium (run .ci/browsers)"
    if not CHROMIUM.exists()
    else "browser tests need the playwright package (pip install -e '.[test]')"
    if importlib.util.find_spec("playwright") is None
    else None
)


class Unavailable(pytest.File):
    """A test module that cannot run here: collected as one skip, with the reason, and never imported."""

    def collect(self) -> list[pytest.Item]:
        pytest.skip(MISSING or "", allow_module_level=True)


if MISSING:

    def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File:
        return Unavailable.from_parent(parent, path=module_path)

else:
    from .fixtures import (  # noqa: F401 (fixtures, found by pytest here)
        browser,
        context,
        live_server,
        new_page,
        page,
        playwright,
        sessions,
        shoot,
        signed_in,
    )
