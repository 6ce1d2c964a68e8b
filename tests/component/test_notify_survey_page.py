"""Notify's survey page on an in-memory broker and the real database: only the signed link of
the SMS opens it, its form is CSRF-protected, and its answer goes through the survey API's
handler (the request reopens, a different second answer is refused)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from shared.topics import Topic
from tests.component.test_notify_flow import Notify, gateway, notify, resolved, store_request

pytestmark = pytest.mark.component
__all__ = ["gateway", "notify"]  # the fixtures of the notify component tests


async def test_the_survey_page_takes_one_answer_through_the_signed_link(notify: Notify) -> None:
    await store_request(notify.db, "R-7", language="en")
    await notify.publish(Topic.LIFECYCLE, resolved("R-7"))
    [survey_sms] = [m["text"] for m in notify.sms("R-7") if "/surveys/" in m["text"]]
    link = re.search(r"http://notify\.test(/surveys/R-7\?lang=en&s=[0-9a-f]{32})", survey_sms)
    assert link, survey_sms
    path = link.group(1)
    transport = httpx.ASGITransport(app=notify.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as http:
        assert (await http.get("/surveys/R-7?lang=en")).status_code == 403
        forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
        assert (await http.get(forged)).status_code == 403
        assert (await http.get(path.replace("R-7", "R-8"))).status_code == 403

        page = await http.get(path)
        assert page.status_code == 200
        assert "Was your problem solved?" in page.text
        hidden: dict[str, Any] = dict(
            re.findall(r'name="(csrf_token|s)" value="([^"]+)"', page.text)
        )
        action = "/surveys/R-7?lang=en"
        no_token = await http.post(action, data={"s": hidden["s"], "satisfied": "no"})
        assert no_token.status_code == 403
        unsure = await http.post(action, data={**hidden, "satisfied": "maybe"})
        assert unsure.status_code == 422
        assert 'id="satisfied-error"' in unsure.text
        unsigned = await http.post(action, data={**hidden, "s": "0" * 32, "satisfied": "no"})
        assert unsigned.status_code == 403

        answered = await http.post(action, data={**hidden, "satisfied": "no", "comment": "late"})
        assert answered.status_code == 303
        shown = await http.get(answered.headers["location"])
        assert 'data-outcome="reopened"' in shown.text
        changed = await http.post(action, data={**hidden, "satisfied": "yes"})
        assert changed.status_code == 409
    request = await notify.db["requests"].find_one({"_id": "R-7"})
    assert request["status"] == "reopened"
    survey = await notify.db["surveys"].find_one({"_id": "R-7"})
    assert survey["answer"]["source"] == "page"
    assert survey["answer"]["comment"] == "late"
    statuses = [v["status"] for v, _ in notify.seen[Topic.LIFECYCLE] if v["request_id"] == "R-7"]
    assert "reopened" in statuses
