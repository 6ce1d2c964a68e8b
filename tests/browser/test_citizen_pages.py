"""The citizen's filing journey in English and in Russian, the lookup of a tracking code read
out over the phone, "use my location", and the printable QR poster, against the real stack."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page

from shared.web.i18n import Language
from tests.browser.citizen import fill_request, request_behind, send, text, tracking_code
from tests.browser.conftest import NewPage
from tests.browser.support import assert_fits_width, check_axe, console_errors, screenshot
from tests.support.services import ServiceSet


@pytest.mark.parametrize(
    ("lang", "kind", "phone_number"),
    [("en", "desktop", "139 0000 0101"), ("ru", "phone", "+86 139-0000-0102")],
)
async def test_a_citizen_files_in_their_language_and_watches_it_dispatched(
    stack: ServiceSet, new_page: NewPage, lang: Language, kind: str, phone_number: str
) -> None:
    page = await new_page(kind, lang=lang)
    await page.goto(stack.url("intake") + "/")  # the language comes from Accept-Language
    assert await page.get_attribute("html", "lang") == lang
    assert await page.locator("h1").inner_text() == text(lang, "form.title")
    await check_axe(page, f"request form ({lang})")
    await assert_fits_width(page)
    await screenshot(page, f"citizen-form-{lang}-{kind}")

    # A description left empty: the error is next to its field, in the page's language.
    await fill_request(page, lang, phone=phone_number, description="")
    await send(page, lang)
    await page.locator("#description-error").wait_for()
    error = await page.locator("#description-error").inner_text()
    assert error == "⚠ " + text(lang, "form.error.description")
    assert await page.get_by_label(text(lang, "form.phone")).input_value() == phone_number

    await page.get_by_label(text(lang, "form.description")).fill(
        f"insulin for my mother, she lives alone {uuid.uuid4().hex[:6]}"
    )
    await send(page, lang)
    code = await tracking_code(page)
    await page.locator(".status-badge[data-status='dispatched']").wait_for(timeout=120_000)
    assert await page.locator(".status-badge").inner_text() == text(lang, "status.dispatched")
    await check_axe(page, f"tracking page ({lang})")
    await assert_fits_width(page)
    await screenshot(page, f"citizen-tracking-{lang}-{kind}")
    assert (await request_behind(stack, code))["status"] == "dispatched"
    assert console_errors(page) == []


async def test_a_code_read_out_over_the_phone_finds_the_request(
    stack: ServiceSet, phone: Page
) -> None:
    intake = stack.url("intake")
    await phone.goto(intake + "/")
    await phone.context.grant_permissions(["geolocation"], origin=intake)
    await phone.context.set_geolocation({"latitude": 34.7712, "longitude": 113.6603})
    await phone.get_by_role("button", name=text("zh", "form.use_location")).click()
    await phone.get_by_text(text("zh", "form.location_ok")).wait_for()
    assert await phone.locator("input[name=lat]").input_value() == "34.77120"
    await fill_request(
        phone, "zh", phone="0371-6512 3456", description="需要通行证去医院", category="transport"
    )
    await send(phone, "zh")
    code = await tracking_code(phone)
    request = await request_behind(stack, code)

    # Staff type what the caller reads out: lower case, spaces instead of the dash.
    await phone.goto(intake + "/track")
    await check_axe(phone, "lookup page")
    await assert_fits_width(phone)
    await screenshot(phone, "citizen-lookup-phone")
    field = phone.get_by_label(text("zh", "lookup.code"))
    await field.fill("abcd 0000")  # 0 is never in a code
    await phone.get_by_role("button", name=text("zh", "lookup.submit")).click()
    await phone.locator("#code-error").wait_for()
    assert await phone.locator("#code-error").inner_text() == "⚠ " + text("zh", "lookup.invalid")
    await check_axe(phone, "lookup page with an error")
    await phone.get_by_label(text("zh", "lookup.code")).fill(code.lower().replace("-", " "))
    await phone.get_by_role("button", name=text("zh", "lookup.submit")).click()
    assert await tracking_code(phone) == code
    assert (await request_behind(stack, code))["request_id"] == request["request_id"]


async def test_the_poster_points_at_the_form_and_prints(stack: ServiceSet, desktop: Page) -> None:
    await desktop.goto(stack.url("intake") + "/poster")
    await check_axe(desktop, "QR poster")
    form_url = stack.url("intake") + "/"
    assert await desktop.get_by_role("link", name=form_url).get_attribute("href") == form_url
    qr = desktop.locator(".qr-code svg")
    assert await qr.count() == 1
    box = await qr.bounding_box()
    assert box is not None
    assert box["width"] >= 200
    await screenshot(desktop, "citizen-poster")
    await desktop.emulate_media(media="print")
    assert not await desktop.locator(".site-header").is_visible()  # only the poster is printed
    assert await qr.is_visible()
    assert console_errors(desktop) == []
