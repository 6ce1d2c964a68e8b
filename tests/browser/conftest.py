"""Fixtures of the browser tests: Debian's Chromium through Playwright, phone and desktop
contexts, and the four services on the real broker and database with the fake SMS gateway.

A missing Chromium fails with the fix named (``deploy/local/tools.sh``); it never skips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    LOCALES,
    MISSING_CHROMIUM,
    PHONE,
    STACK_ENV,
    watch_console,
)
from tests.support.services import ServiceSet

NewPage = Callable[..., Awaitable[Page]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def _context(browser: Browser, shape: dict[str, Any], lang: str) -> BrowserContext:
    context = await browser.new_context(
        **shape, locale=LOCALES[lang], extra_http_headers={"Accept-Language": LOCALES[lang]}
    )
    context.set_default_timeout(30_000)
    return context


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """``await new_page("phone" | "desktop", lang="zh")``: a page in a fresh context (its own
    cookies) whose console errors ``console_errors(page)`` returns; closed after the test."""
    contexts: list[BrowserContext] = []

    async def make(kind: str = "phone", *, lang: str = "zh") -> Page:
        context = await _context(browser, PHONE if kind == "phone" else DESKTOP, lang)
        contexts.append(context)
        page = await context.new_page()
        watch_console(page)
        return page

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
async def phone(new_page: NewPage) -> Page:
    """A 360 px wide phone in Chinese."""
    return await new_page("phone", lang="zh")


@pytest.fixture
async def desktop(new_page: NewPage) -> Page:
    """A 1280 px wide desktop in Chinese."""
    return await new_page("desktop", lang="zh")


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    """The staff keys the pages sign in with (a module may add its own)."""
    return dict(STACK_ENV)


@pytest.fixture(scope="module")
def stack(sms_pipeline: ServiceSet) -> ServiceSet:
    """The four services for one test module, notify sending SMS to the module's gateway."""
    return sms_pipeline
