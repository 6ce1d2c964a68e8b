"""The verifier console in Chromium, in English, against the real stack: a verifier signs in
with the key (a session cookie, no key in any URL), sees another verifier's claim on a doubtful
request with its expiry, takes it over once that claim has expired, corrects the district, and
the request goes on to dispatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from pymongo import AsyncMongoClient

from tests.browser.conftest import NewPage
from tests.browser.support import (
    STACK_ENV,
    VERIFIER_ID,
    VERIFIER_KEY,
    assert_fits_width,
    check_axe,
    console_errors,
    screenshot,
)
from tests.support.journey import shown_as, submit
from tests.support.services import ServiceSet

OTHER_ID, OTHER_KEY = "verifier-2", "browser-verifier-2-key"
# A district nobody knows: verify cannot place it and holds the request for a human.
DOUBTFUL: dict[str, Any] = {
    "category": "food_supply",
    "description": "家里老人独居，米和菜都吃完了",
    "contact": {"name": "赵先生", "phone": "139 0037 2468"},
    "location": {"district": "金水湾区", "address": "花园路 12 号"},
    "special_groups": ["elderly"],
    "language": "zh",
}


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    keys = {VERIFIER_ID: VERIFIER_KEY, OTHER_ID: OTHER_KEY}
    return {**STACK_ENV, "VERIFY_REVIEWER_KEYS": json.dumps(keys)}


async def sign_in(page: Page, stack: ServiceSet) -> None:
    await page.goto(stack.url("verify") + "/console?lang=en")
    await check_axe(page, "verifier sign-in")
    await page.get_by_label("Verifier key").fill(VERIFIER_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Requests waiting for review")


async def test_a_verifier_corrects_the_district_and_the_request_is_dispatched(
    stack: ServiceSet, new_page: NewPage, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    request_id = (await submit(stack, DOUBTFUL))["request_id"]
    await shown_as(stack, request_id, "needs_review")
    # Another verifier claims it first, over the review API.
    async with httpx.AsyncClient(
        base_url=stack.url("verify"), headers={"X-Verifier-Key": OTHER_KEY}
    ) as http:
        assert (await http.post(f"/v1/review/{request_id}/claim")).status_code == 200

    page = await new_page("desktop", lang="en")
    await sign_in(page, stack)
    cookies = await page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "verifier_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert VERIFIER_KEY not in session["value"]
    row = page.locator(f"tr[data-request-id='{request_id}']")
    await expect(row).to_contain_text("verifier-2 is working on it until")
    await expect(row).to_contain_text("District not recognised")
    await check_axe(page, "verifier console queue")
    await screenshot(page, "verify-console-queue")

    await row.get_by_role("link", name=request_id).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Review of request {request_id}"
    )
    await page.get_by_role("button", name="Try to claim").click()
    await expect(page.get_by_role("alert")).to_contain_text("verifier-2 is working on this")

    # The other verifier walks away: their claim expires, and this verifier takes it over.
    await mongo[stack.database]["review_claims"].update_one(
        {"_id": request_id}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}}
    )
    await page.goto(f"{stack.url('verify')}/console/review/{request_id}")
    await expect(page.locator(".claim")).to_contain_text("verifier-2's claim expired")
    await page.get_by_role("button", name="Claim and work on it").click()
    await expect(page.locator(".claim")).to_contain_text("Claimed by you until")
    await page.get_by_label("District", exact=True).select_option("jinshui")
    await page.get_by_label("Reason", exact=True).fill(
        "Called back: lives in Jinshui, Huayuan Road"
    )
    await check_axe(page, "verifier console review")
    await screenshot(page, "verify-console-review")
    await page.get_by_role("button", name="Send the decision").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Request {request_id} is verified")
    assert all(VERIFIER_KEY not in url for url in [page.url])
    # The refused actions answer 4xx on purpose; anything else (a CSP refusal, a script
    # error) is a failure.
    assert [e for e in console_errors(page) if "Failed to load resource" not in e] == []

    view = await shown_as(stack, request_id, "dispatched", timeout=45)
    assert view["district"] == "jinshui"
    actors = [entry["actor"] for entry in view["timeline"]]
    assert f"verifier:{VERIFIER_ID}" in actors


async def test_the_console_fits_a_phone_and_refuses_a_wrong_key(
    stack: ServiceSet, new_page: NewPage
) -> None:
    page = await new_page("phone", lang="zh")
    await page.goto(stack.url("verify") + "/console")
    await page.get_by_label("核查密钥").fill("not-the-key")
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("alert")).to_contain_text("密钥不正确")
    await page.get_by_label("核查密钥").fill(VERIFIER_KEY)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("待核查求助")
    await assert_fits_width(page)
    await check_axe(page, "verifier console on a phone")
    await screenshot(page, "verify-console-phone")
    await page.get_by_role("button", name="退出登录").click()
    await expect(page.get_by_label("核查密钥")).to_be_visible()
