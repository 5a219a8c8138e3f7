"""Opening jobwatch's own web pages in headless Chromium (no JupyterLab needed).

``open_page(url)`` gives a Playwright page in a fresh browser context (its own
sessionStorage) that records the console; afterwards each page's console goes
to ``artifacts/pages-TEST-N-console.txt`` and, if the test failed, a picture
of the page to ``artifacts/pages-TEST-N-failure.png``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, FAILED, PAGE_TIMEOUT_MS, VIEWPORT, ConsoleLog

OpenPage = Callable[[str], Any]


class Recorded:
    """A page and what it said on its console."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console = ConsoleLog()
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.console.errors.append(f"uncaught: {e}"))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console.errors.append(f"{message.text} {message.location.get('url', '')}")
        elif message.type == "warning":
            self.console.warnings.append(message.text)

    def errors(self, allowed: str | None = None) -> list[str]:
        """Console errors, less those matching the regular expression ``allowed``."""
        return [e for e in self.console.errors if not (allowed and re.search(allowed, e))]


@pytest.fixture
def open_page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Callable[..., Recorded]]:
    """``open_page(url)``: a new context and page at ``url``, its console recorded."""
    opened: list[tuple[Any, Recorded]] = []

    def open_(url: str) -> Recorded:
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        recorded = Recorded(context.new_page())
        opened.append((context, recorded))
        recorded.page.goto(url, wait_until="domcontentloaded")
        return recorded

    yield open_
    failed = request.node.stash.get(FAILED, True)
    ARTIFACTS.mkdir(exist_ok=True)
    for number, (context, recorded) in enumerate(opened):
        stem = f"pages-{request.node.name}-{number}"
        recorded.console.save(ARTIFACTS / f"{stem}-console.txt")
        if failed:
            recorded.page.screenshot(path=str(ARTIFACTS / f"{stem}-failure.png"), full_page=True)
        context.close()
