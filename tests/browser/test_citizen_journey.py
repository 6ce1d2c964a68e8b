"""A citizen on a phone, in Chinese, against the real stack: files a request over a network
that loses the first answer, gets a tracking code, watches the status reach ``dispatched``;
later opens the survey link of the SMS the gateway received and answers "not satisfied", and
the request reopens."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, Route

from tests.browser.citizen import (
    NOTIFY_TEXT,
    fill_request,
    link_in,
    request_behind,
    send,
    submitted_ids,
    text,
    tracking_code,
)
from tests.browser.support import assert_fits_width, check_axe, console_errors, screenshot
from tests.support.journey import dispatch_job, report
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway


async def test_a_citizen_files_in_chinese_and_the_survey_reopens_the_request(
    stack: ServiceSet, phone: Page, gateway: FakeGateway, kafka_bootstrap: str
) -> None:
    intake = stack.url("intake")
    await phone.goto(intake + "/")
    assert await phone.get_attribute("html", "lang") == "zh-Hans"
    await check_axe(phone, "request form")
    await assert_fits_width(phone)
    await screenshot(phone, "citizen-form-phone")

    # Sent empty: each error next to its field, in Chinese, and no request filed.
    await send(phone, "zh")
    await phone.locator("#error-summary").wait_for()
    assert await phone.locator("#phone-error").inner_text() == "⚠ " + text("zh", "form.error.phone")
    assert await phone.locator("#category-error").inner_text() == "⚠ " + text(
        "zh", "form.error.category"
    )
    assert await phone.get_by_label(text("zh", "form.phone")).get_attribute("aria-invalid")
    await check_axe(phone, "request form with errors")
    await screenshot(phone, "citizen-form-errors-phone")

    # The first answer is lost on the way back (the request reached intake): the page sends
    # the form again with the same key, and one request is filed.
    marker = uuid.uuid4().hex[:8]
    lost = {"answers": 0}

    async def lose_first_answer(route: Route) -> None:
        if route.request.method == "POST" and lost["answers"] == 0:
            lost["answers"] += 1
            await route.fetch(max_redirects=0)  # the server gets and answers it …
            await route.abort("connectionreset")  # … the phone never hears the answer
        else:
            await route.continue_()

    await phone.route(intake + "/", lose_first_answer)
    await fill_request(
        phone, "zh", phone="138 0013 8000", description=f"需要胰岛素，家里老人独居 {marker}"
    )
    await send(phone, "zh")
    code = await tracking_code(phone)
    assert lost["answers"] == 1
    request_id = (await request_behind(stack, code))["request_id"]
    assert await submitted_ids(stack, kafka_bootstrap, marker) == {request_id}

    await phone.locator(".status-badge[data-status='dispatched']").wait_for(timeout=120_000)
    assert await phone.locator(".status-badge").inner_text() == text("zh", "status.dispatched")
    assert await phone.locator(".timeline li[data-status='dispatched']").count() == 1
    await check_axe(phone, "tracking page")
    await assert_fits_width(phone)
    await screenshot(phone, "citizen-tracking-phone")

    # The SMS's status link opens the same tracking page.
    def sms(fragment: str) -> list[str]:
        return [
            m["text"]
            for m in gateway.snapshot()["messages"]
            if request_id in m["text"] and fragment in m["text"]
        ]

    await wait_until(lambda: sms("/requests/"), timeout=60)
    await phone.goto(link_in(sms("/requests/")[0], "/requests/"))
    assert await tracking_code(phone) == code

    # The medical team's system acknowledges and resolves; notify sends the survey.
    job = await dispatch_job(stack, kafka_bootstrap, request_id, timeout=90)
    await report(stack, kafka_bootstrap, job, "acknowledged")
    await report(stack, kafka_bootstrap, job, "resolved")
    await wait_until(lambda: sms("/surveys/"), timeout=90)
    await phone.goto(link_in(sms("/surveys/")[0], "/surveys/"))
    question = NOTIFY_TEXT.gettext("zh", "survey.question")
    await phone.get_by_role("group", name=question).wait_for()
    await check_axe(phone, "survey page")
    await assert_fits_width(phone)
    await screenshot(phone, "citizen-survey-phone")

    await phone.get_by_label(NOTIFY_TEXT.gettext("zh", "survey.no")).check()
    await phone.get_by_label(NOTIFY_TEXT.gettext("zh", "survey.comment")).fill("药还没送到")
    await phone.get_by_role("button", name=NOTIFY_TEXT.gettext("zh", "survey.submit")).click()
    await phone.locator("[data-outcome='reopened']").wait_for()
    await check_axe(phone, "survey answered")

    # The tracking page shows the request reopened.
    await phone.goto(f"{intake}/track/{code.replace('-', '')}")
    await phone.locator(".timeline li[data-status='reopened']").wait_for(timeout=60_000)
    assert console_errors(phone) == []
