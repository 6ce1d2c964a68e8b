"""A department board in Chromium, in Russian, against the real stack: the medical team signs in,
a new job appears on the open board by itself, the team acknowledges (签收) and resolves it, each
press a report on help.status exactly as a departmental system would send it, and the request
reaches ``resolved``. A 退单 without a reason is refused next to the job."""

from __future__ import annotations

from playwright.async_api import Page, expect

from shared.topics import Topic
from tests.browser.conftest import NewPage
from tests.browser.support import (
    BOARD_KEYS,
    assert_fits_width,
    check_axe,
    console_errors,
    screenshot,
)
from tests.support.journey import EXAMPLE, shown_as, submit, values_for
from tests.support.kafka import read_topic
from tests.support.services import ServiceSet

# The example request, from a Russian speaker.
INSULIN = {
    **EXAMPLE,
    "description": "Нужен инсулин, пожилой человек живёт один",
    "contact": {"name": "Иван", "phone": "138 0037 1357"},
    "language": "ru",
}


async def sign_in(page: Page, stack: ServiceSet) -> None:
    await page.goto(stack.url("route") + "/board/medical?lang=ru")
    await check_axe(page, "board sign-in")
    await page.get_by_label("Ключ").fill(BOARD_KEYS["medical"])
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Медицинские бригады: открытые задания"
    )


async def test_a_team_acknowledges_and_resolves_a_job_on_its_board(
    stack: ServiceSet, new_page: NewPage, kafka_bootstrap: str
) -> None:
    page = await new_page("desktop", lang="ru")
    await sign_in(page, stack)
    request_id = (await submit(stack, INSULIN))["request_id"]

    # The board was open before the job existed: it shows up without a reload.
    card = page.locator("article.job").filter(has_text=request_id)
    await expect(card).to_be_visible(timeout=45_000)
    await expect(card.locator(".countdown")).to_contain_text("До приёма осталось")
    leg_id = await card.get_attribute("data-leg-id")
    await check_axe(page, "department board")
    await screenshot(page, "route-board")

    await card.get_by_role("button", name="Вернуть (退单)").click()
    card = page.locator("article.job").filter(has_text=request_id)
    await expect(card.get_by_role("alert")).to_contain_text("Укажите причину")
    await check_axe(page, "department board with a refusal")

    await card.get_by_role("button", name="Принять (签收)").click()
    await expect(page.get_by_role("status").first).to_contain_text("Отправлено: Принято")
    card = page.locator("article.job").filter(has_text=request_id)
    await expect(card).to_have_attribute("data-progress", "acknowledged", timeout=30_000)
    await expect(card.locator(".countdown")).to_contain_text("До выполнения осталось")

    await card.get_by_label("Примечание").fill("Инсулин доставлен, врач осмотрел")
    await card.get_by_role("button", name="Выполнено").click()
    await expect(page.locator("article.job").filter(has_text=request_id)).to_have_count(
        0, timeout=30_000
    )
    # The refused actions answer 4xx on purpose; anything else (a CSP refusal, a script
    # error) is a failure.
    assert [e for e in console_errors(page) if "Failed to load resource" not in e] == []

    await shown_as(stack, request_id, "resolved")
    records = await read_topic(
        kafka_bootstrap,
        stack.prefix + Topic.STATUS.value,
        timeout=20.0,
        until=lambda rs: len(values_for(rs, request_id)) >= 2,
    )
    reports = [
        (r["status"], r["leg_id"], r["department"], r["actor"])
        for r in values_for(records, request_id)
    ]
    assert reports == [
        ("acknowledged", leg_id, "medical", "board:medical"),
        ("resolved", leg_id, "medical", "board:medical"),
    ]
    [resolution] = [r for r in values_for(records, request_id) if r["status"] == "resolved"]
    assert resolution["note"] == "Инсулин доставлен, врач осмотрел"


async def test_the_board_fits_a_phone(stack: ServiceSet, new_page: NewPage) -> None:
    page = await new_page("phone", lang="ru")
    await sign_in(page, stack)
    await assert_fits_width(page)
    await check_axe(page, "department board on a phone")
    await screenshot(page, "route-board-phone")
    # One department's session opens no other board.
    await page.goto(stack.url("route") + "/board/police")
    await expect(page.get_by_label("Ключ")).to_be_visible()
