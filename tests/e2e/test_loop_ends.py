"""The loop's ends on the real stack: an unanswered call-back survey is reminded once and the
request closed without answer; a department's needs_info reaches the citizen in their language
with a link, and what the citizen adds there reaches the department on its dispatch topic."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.notify import domain
from shared import requests_store
from shared.kafka import effect_id
from shared.topics import Topic
from tests.support.journey import help_request, report, sms_for, stored_as, taken_up
from tests.support.kafka import read_topic, wait_until
from tests.support.metrics import samples
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    """Survey timers in seconds instead of days, through the settings."""
    return {
        "NOTIFY_SURVEY_REMINDER_SECONDS": "2",
        "NOTIFY_SURVEY_CLOSE_SECONDS": "5",
        "NOTIFY_SURVEY_SCAN_SECONDS": "0.5",
    }


def body(phone: str, language: str) -> dict[str, Any]:
    return help_request(phone, language, "need insulin, my mother lives alone")


def nid(request_id: str, event: str, leg: str = "") -> str:
    return domain.notification_id(request_id, event, "sms", leg)


async def counter(services: ServiceSet, service: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in await samples(services, service, name)
        if all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_an_unanswered_survey_is_reminded_once_then_closed_without_answer(
    services: ServiceSet,
    gateway: FakeGateway,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    receipt, job = await taken_up(services, kafka_bootstrap, body("139 0000 0101", "en"))
    rid = receipt["request_id"]
    await report(services, kafka_bootstrap, job, "resolved")
    await wait_until(lambda: nid(rid, "survey") in sms_for(gateway, rid), timeout=60)
    reminder = await wait_until(
        lambda: sms_for(gateway, rid).get(nid(rid, "survey_reminder")), timeout=30
    )
    assert reminder["text"].startswith("Reminder:")
    assert f"{services.url('notify')}/surveys/{rid}" in reminder["text"]

    doc = await stored_as(mongo[services.database], rid, "closed", timeout=30)
    [entry] = [e for e in doc["timeline"] if e["status"] == "closed"]
    assert (entry["reason"], entry["actor"]) == ("closed_without_answer", "notify")
    lifecycle = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.LIFECYCLE.value,
        until=lambda rs: any(
            r.key == rid.encode() and json.loads(r.value)["status"] == "closed" for r in rs
        ),
    )
    closing = [
        json.loads(r.value)
        for r in lifecycle
        if r.key == rid.encode() and json.loads(r.value)["status"] == "closed"
    ]
    assert [c["reason"] for c in closing] == ["closed_without_answer"]
    assert await counter(services, "notify", "cityhelp_surveys_total", step="reminded") >= 1
    step = "closed_without_answer"
    assert await counter(services, "notify", "cityhelp_surveys_total", step=step) >= 1
    # One reminder only, however many timer passes ran since.
    reminders = [m for m in gateway.snapshot()["messages"] if m["text"].startswith("Reminder:")]
    assert len([m for m in reminders if rid in m["text"]]) == 1

    async with httpx.AsyncClient(base_url=services.url("notify"), timeout=10) as http:
        late = await http.post(
            f"/v1/requests/{rid}/survey",
            json={"satisfied": True},
            headers={"X-Tracking-Token": receipt["tracking_token"]},
        )
    assert late.status_code == 409, late.text
    assert "survey_closed" in late.text


async def test_needs_info_asks_the_citizen_and_the_addition_reaches_the_department(
    services: ServiceSet,
    gateway: FakeGateway,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    receipt, job = await taken_up(services, kafka_bootstrap, body("139 0000 0102", "ru"))
    rid = receipt["request_id"]
    asked = await report(
        services, kafka_bootstrap, job, "needs_info", note="Which insulin, and how many days left?"
    )
    key = nid(rid, "needs_info", effect_id("needs-info", asked))
    message = await wait_until(lambda: sms_for(gateway, rid).get(key), timeout=60)
    assert "нужны дополнительные сведения" in message["text"]
    assert "Which insulin, and how many days left?" in message["text"]
    link = f"{services.url('route')}/v1/requests/{rid}/info"
    assert link in message["text"]

    async with httpx.AsyncClient(timeout=10) as http:
        wrong = await http.post(link, json={"text": "x"}, headers={"X-Tracking-Token": "nope"})
        missing = await http.post(link, json={"text": "x"})
        added = await http.post(
            link,
            json={"text": "Lantus, two days left"},
            headers={"X-Tracking-Token": receipt["tracking_token"]},
        )
    assert (wrong.status_code, missing.status_code) == (403, 401)
    assert added.status_code == 202, added.text
    event_id = added.json()["event_id"]

    records = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.DISPATCH_MEDICAL.value,
        until=lambda rs: any(dict(r.headers).get("ce_id") == event_id.encode() for r in rs),
    )
    [record] = [r for r in records if dict(r.headers).get("ce_id") == event_id.encode()]
    assert dict(record.headers)["ce_type"] == b"city.help.leg.info_added.v1"
    value = json.loads(record.value)
    assert (value["leg_id"], value["team_id"]) == (job["leg_id"], job["team_id"])
    assert (value["text"], value["asked_event_id"]) == ("Lantus, two days left", asked)

    doc = await requests_store.get_request(mongo[services.database], rid)
    assert doc is not None
    statuses = [e["status"] for e in doc["timeline"]]
    assert "needs_info" in statuses
    assert "info_added" in statuses
    assert doc["status"] == "in_progress", "asking and adding leave the request in progress"
