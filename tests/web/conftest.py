"""Fixtures of the browser tests: Debian's chromium, and pages opened on a chat."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.web.helpers import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, OpenPage


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), (
        f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
        "`make test` installs it (or: apt-get install chromium)."
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """Open the chat page in a fresh browser context (its own localStorage).

    ``url`` defaults to the ``chat`` fixture's server (started only then). Any
    uncaught exception in a page's script fails the test.
    """
    contexts = []
    errors: list[str] = []

    def open_(url: str | None = None, init_script: str | None = None, **options: Any) -> Page:
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((url or request.getfixturevalue("chat").url) + "/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == [], f"the page's script raised: {errors}"
