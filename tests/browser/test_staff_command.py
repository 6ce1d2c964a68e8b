"""The command centre in Chromium, in Chinese, against the real stack: the desk signs in and
watches the totals move as a request comes in; a request filed under the wrong category is
rejected twice by its department's system and lands with the command centre, which
re-dispatches it from the page to the medical teams with a new category and a reason. The job
goes out once on help.dispatch.medical, and the reason is on the request's timeline."""

from __future__ import annotations

import json

import httpx
from playwright.async_api import expect

from shared.topics import Topic
from tests.browser.conftest import NewPage
from tests.browser.support import COMMAND_KEY, check_axe, console_errors, screenshot
from tests.support.journey import WRONG_CATEGORY, everything_about, jobs, report, submit
from tests.support.services import ServiceSet


async def test_the_command_centre_sees_counts_move_and_redispatches_a_leg(
    stack: ServiceSet, new_page: NewPage, kafka_bootstrap: str
) -> None:
    page = await new_page("desktop", lang="zh")
    await page.goto(stack.url("route") + "/command")
    await check_axe(page, "command centre sign-in")
    await page.get_by_label("岗位密钥").fill(COMMAND_KEY)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("指挥中心：实时总览")
    total = page.locator("#total-requests")
    before = int(await total.get_attribute("data-total") or "0")

    receipt = await submit(stack, WRONG_CATEGORY)
    request_id, token = receipt["request_id"], receipt["tracking_token"]
    # The totals move by themselves (the page reloads them every few seconds).
    await expect(total).to_have_attribute("data-total", str(before + 1), timeout=30_000)

    [first] = await jobs(stack, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 1)
    await report(stack, kafka_bootstrap, first, "rejected", note="不是教育问题")
    second = (await jobs(stack, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 2))[1]
    await report(stack, kafka_bootstrap, second, "rejected", note="我们也管不了")
    [owned] = await jobs(stack, kafka_bootstrap, Topic.DISPATCH_COMMAND, request_id, 1)

    card = page.locator(f"article[data-leg-id='{owned['leg_id']}']")
    await expect(card).to_be_visible(timeout=30_000)
    await expect(card).to_contain_text("学生教育")
    await check_axe(page, "command centre")
    await screenshot(page, "route-command")

    await card.get_by_label("改派给").select_option("medical")
    await card.get_by_label("更正类别").select_option("medical")
    await card.get_by_label("改派理由").fill("孩子发烧，应由医疗救助组处理")
    await card.get_by_role("button", name="重新派单").click()
    await expect(page.get_by_role("status").first).to_contain_text(
        f"求助 {request_id} 已重新派往医疗救助组"
    )
    await expect(page.locator(f"article[data-leg-id='{owned['leg_id']}']")).to_have_count(0)
    # The refused actions answer 4xx on purpose; anything else (a CSP refusal, a script
    # error) is a failure.
    assert [e for e in console_errors(page) if "Failed to load resource" not in e] == []

    [job] = await jobs(stack, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id, 1)
    assert (job["category"], job["rule_id"], job["reason"]) == (
        "medical",
        "redispatch",
        "孩子发烧，应由医疗救助组处理",
    )
    async with httpx.AsyncClient(base_url=stack.url("intake")) as http:
        view = (await http.get(f"/v1/requests/{request_id}", params={"token": token})).json()
    assert view["category"] == "medical"
    [entry] = [e for e in view["timeline"] if str(e.get("actor")).startswith("command:")]
    assert entry["reason"] == "孩子发烧，应由医疗救助组处理"
    assert entry["detail"]["department"] == "medical"
    medical = await everything_about(stack, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id)
    assert len(medical) == 1, json.dumps(medical, ensure_ascii=False)[:500]


async def test_a_redispatch_without_a_reason_is_refused_next_to_its_field(
    stack: ServiceSet, new_page: NewPage, kafka_bootstrap: str
) -> None:
    page = await new_page("desktop", lang="en")
    await page.goto(stack.url("route") + "/command?lang=en")
    await page.get_by_label("Key").fill(COMMAND_KEY)
    await page.get_by_role("button", name="Sign in").click()
    body = {**WRONG_CATEGORY, "category": "suggestion", "description": "建议增加夜间配送"}
    request_id = (await submit(stack, body))["request_id"]
    [owned] = await jobs(stack, kafka_bootstrap, Topic.DISPATCH_COMMAND, request_id, 1)
    card = page.locator(f"article[data-leg-id='{owned['leg_id']}']")
    await expect(card).to_be_visible(timeout=30_000)
    await card.get_by_role("button", name="Re-dispatch").click()
    card = page.locator(f"article[data-leg-id='{owned['leg_id']}']")
    reason = card.get_by_label("Reason")
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(card).to_contain_text("Give the reason for the re-dispatch.")
    await expect(card).to_contain_text("Choose a department, a category, or both.")
    await check_axe(page, "command centre with errors (en)")
