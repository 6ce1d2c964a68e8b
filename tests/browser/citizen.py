"""Steps of the citizen journeys in the browser tests: fill the request form in the page's
language, find the request behind a tracking code, act as the department's own system."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import httpx
from playwright.async_api import Page

from shared.topics import Topic
from shared.web.i18n import Catalogue, Language
from shared.web.pages import WEB_DIR
from tests.support.kafka import read_topic
from tests.support.services import ServiceSet

REPO: Final = Path(__file__).resolve().parents[2]
# The pages' own catalogues: the tests find fields by the labels a citizen reads.
INTAKE_TEXT: Final = Catalogue.load([WEB_DIR / "messages", REPO / "services/intake/messages"])
NOTIFY_TEXT: Final = Catalogue.load([WEB_DIR / "messages", REPO / "services/notify/messages"])
CODE: Final = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")
DISTRICT_NAMES: Final = {"zh": "金水区", "en": "Jinshui District", "ru": "Район Цзиньшуй"}


def text(lang: Language, key: str, **values: object) -> str:
    return INTAKE_TEXT.gettext(lang, key, **values)


async def fill_request(
    page: Page,
    lang: Language,
    *,
    phone: str,
    description: str,
    category: str = "medical",
    groups: tuple[str, ...] = ("elderly", "chronic_illness"),
) -> None:
    """Fills the form as a citizen would, by the labels of the page's language."""
    await page.get_by_label(text(lang, f"category.{category}")).check()
    for group in groups:
        await page.get_by_label(text(lang, f"group.{group}")).check()
    await page.get_by_label(text(lang, "form.district")).select_option(label=DISTRICT_NAMES[lang])
    await page.get_by_label(text(lang, "form.phone")).fill(phone)
    await page.get_by_label(text(lang, "form.description")).fill(description)


async def send(page: Page, lang: Language) -> None:
    await page.get_by_role("button", name=text(lang, "form.submit")).click()


async def tracking_code(page: Page) -> str:
    """The code shown on the tracking page (after the redirect of the form)."""
    await page.wait_for_url(re.compile(r"/track/[2-9A-Z]{8}"))
    code = (await page.locator(".tracking-code").inner_text()).strip()
    assert CODE.match(code), code
    return code


async def request_behind(services: ServiceSet, code: str) -> dict[str, Any]:
    """What intake's JSON API says the code stands for."""
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        response = await http.get(f"/v1/tracking-codes/{code}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def submitted_ids(services: ServiceSet, bootstrap: str, marker: str) -> set[str]:
    """The request ids on both submitted lanes whose description carries ``marker`` (each
    lane read for a few seconds: all it holds, on a test broker)."""
    found: set[str] = set()
    for topic in (Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY):
        records = await read_topic(
            bootstrap, services.prefix + topic.value, until=lambda rs: False, timeout=5
        )
        for record in records:
            value = json.loads(record.value)
            if marker in value["request"]["description"]:
                found.add(value["request_id"])
    return found


def link_in(message: str, path: str) -> str:
    """The first link in an SMS whose path starts with ``path``."""
    match = re.search(rf"https?://[^\s]+{re.escape(path)}[^\s]*", message)
    assert match, f"no {path} link in {message!r}"
    return match.group(0)
