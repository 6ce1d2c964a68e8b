"""Helpers of the browser tests: Debian's Chromium, axe-core, screenshots, layout checks.

Playwright's own browser download does not work on these machines, so the tests launch
Debian's Chromium (``deploy/local/tools.sh`` installs it: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Final

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

REPO: Final = Path(__file__).resolve().parents[2]
SCREENSHOTS: Final = REPO / "docs" / "screenshots"
CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
MISSING_CHROMIUM: Final = (
    f"No Chromium at {CHROMIUM}: the browser tests drive Debian's Chromium. Install it with "
    "`deploy/local/tools.sh` (as root: `apt-get install -y chromium`); `make test` runs it."
)
# Viewports: a small phone (the 360 px the pages must fit without sideways scrolling) and a
# desktop, for the staff pages.
PHONE: Final[dict[str, Any]] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP: Final[dict[str, Any]] = {"viewport": {"width": 1280, "height": 900}}
# Accept-Language of a browser in each page language.
LOCALES: Final = {"zh": "zh-CN", "en": "en-GB", "ru": "ru-RU"}
FAILING_IMPACTS: Final = ("serious", "critical")

# Keys the staff pages sign in with in the browser tests' service set.
VERIFIER_ID: Final = "verifier-1"
VERIFIER_KEY: Final = "browser-verifier-key"
COMMAND_DESK: Final = "desk-1"
COMMAND_KEY: Final = "browser-command-key"
BOARD_KEYS: Final = {"medical": "browser-medical-board-key", "police": "browser-police-board-key"}
STACK_ENV: Final = {
    "VERIFY_REVIEWER_KEYS": json.dumps({VERIFIER_ID: VERIFIER_KEY}),
    "ROUTE_COMMAND_KEYS": json.dumps(
        {COMMAND_DESK: hashlib.sha256(COMMAND_KEY.encode()).hexdigest()}
    ),
    "ROUTE_BOARD_KEYS": json.dumps(
        {dept: hashlib.sha256(key.encode()).hexdigest() for dept, key in BOARD_KEYS.items()}
    ),
}

_axe = Axe()


async def check_axe(page: Page, name: str) -> list[dict[str, Any]]:
    """Runs axe-core on the page; fails on serious or critical violations, returns the rest.

    ``name`` says which page in the failure (and in the returned minor findings).
    """
    results = await _axe.run(page)
    violations: list[dict[str, Any]] = results.response.get("violations", [])
    failing = [v for v in violations if v.get("impact") in FAILING_IMPACTS]
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
        for v in failing
    )
    assert not failing, f"axe-core on {name} ({page.url}):\n{report}"
    return [{"page": name, "id": v["id"], "impact": v.get("impact")} for v in violations]


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Saves the page as ``docs/screenshots/<name>.png`` (committed; the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


async def assert_fits_width(page: Page) -> None:
    """No sideways scrolling: the document is no wider than the viewport."""
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} > {widths[1]} px"


_console: dict[int, list[str]] = {}


def watch_console(page: Page) -> list[str]:
    """Collects the page's console errors (a CSP refusal shows up there) and uncaught errors."""
    errors = _console.setdefault(id(page), [])
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def console_errors(page: Page, *, with_failed_loads: bool = False) -> list[str]:
    """What :func:`watch_console` collected for a page of the ``new_page`` fixture: script
    errors and refusals (a CSP violation among them); a failed or 4xx/5xx load counts only
    with ``with_failed_loads`` (a form answered 422 logs one)."""
    return [
        e
        for e in _console.get(id(page), [])
        if with_failed_loads or not e.startswith("Failed to load resource")
    ]
