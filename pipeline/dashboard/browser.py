"""A real headless Chromium on the dashboard, for its test and its screenshot tool (not for users).

Playwright (the ``dev`` extra) drives the system's Chromium (Debian package ``chromium``,
installed by ``tools/setup.sh --dev``): Playwright's own browser downloads need the network.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Any, Iterator

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WINDOW = {"width": 1280, "height": 1000}


def find_chromium() -> str | None:
    """The path of an installed Chromium, or None."""
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


@contextmanager
def headless_page(url: str, viewport: dict[str, int] = WINDOW) -> Iterator[Any]:
    """A Playwright page with ``url`` loaded in headless Chromium; RuntimeError naming the fix if none."""
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise RuntimeError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}): "
                           "apt-get install chromium, or bash tools/setup.sh --dev")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(url)
            yield page
        finally:
            browser.close()
