"""What the citizen receives, end to end: the four services, the real broker and database, and
the fake SMS gateway (in this process) standing in for the operator."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.notify import domain
from shared import requests_store
from shared.envelope import event_type
from shared.topics import Topic
from tests.conftest import make_services
from tests.support.journey import dispatch_job, help_request, report, sms_for, submit
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.services import ServiceSet, free_port
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

CYRILLIC = set("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ")


def nid(request_id: str, event: str, leg: str = "") -> str:
    return domain.notification_id(request_id, event, "sms", leg)


async def test_citizen_told_each_step_once_in_russian_and_survey_reopens(
    services: ServiceSet,
    gateway: FakeGateway,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    receipt = await submit(services, help_request("139 0000 0001", "ru", "нужен инсулин, 1"))
    rid = receipt["request_id"]
    job = await dispatch_job(services, kafka_bootstrap, rid)
    early = {nid(rid, "received"), nid(rid, "verified"), nid(rid, "dispatched", job["leg_id"])}
    await wait_until(lambda: early <= set(sms_for(gateway, rid)), timeout=60)

    # The real path only: the medical team reports on help.status, route turns the reports
    # into the request's lifecycle, notify tells the citizen and sends the survey.
    await report(services, kafka_bootstrap, job, "acknowledged")
    await report(services, kafka_bootstrap, job, "resolved")

    def resolved_by_route(records: list[Any]) -> bool:
        return any(
            r.key == rid.encode()
            and (event := json.loads(r.value))["status"] == "resolved"
            and event["actor"] == "route"
            for r in records
        )

    lifecycle = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.LIFECYCLE.value,
        until=resolved_by_route,
        timeout=120,
    )
    assert resolved_by_route(lifecycle), f"route never resolved the request; see {services.log_dir}"
    [resolved] = [
        event
        for r in lifecycle
        if r.key == rid.encode() and (event := json.loads(r.value))["status"] == "resolved"
    ]
    assert (resolved["leg_id"], resolved["team_id"]) == (job["leg_id"], job["team_id"])
    final = early | {nid(rid, "resolved"), nid(rid, "survey")}
    await wait_until(lambda: final <= set(sms_for(gateway, rid)), timeout=120)

    messages = sms_for(gateway, rid)
    optional = {nid(rid, "acknowledged"), nid(rid, "escalated")}
    assert set(messages) - final - optional == set(), "no message beyond the expected ones"
    repeats = gateway.snapshot()["duplicate_keys"]
    assert not set(messages) & set(repeats), "nothing was sent twice"
    for message in messages.values():
        assert message["to"] == "+8613900000001"
        assert CYRILLIC & set(message["text"]), message["text"]
    status_link = f"{services.url('intake')}/requests/{rid}?lang=ru"
    assert status_link in messages[nid(rid, "received")]["text"]
    survey_text = messages[nid(rid, "survey")]["text"]
    assert f"{services.url('notify')}/surveys/{rid}?lang=ru&s=" in survey_text

    # The citizen answers the call-back: not satisfied.
    async with httpx.AsyncClient(base_url=services.url("notify")) as http:
        answer = await http.post(
            f"/v1/requests/{rid}/survey",
            json={"satisfied": False, "comment": "лекарство не привезли"},
            headers={"X-Tracking-Token": receipt["tracking_token"]},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "reopened"

    def reopened(records: list[Any]) -> bool:
        return any(
            r.key == rid.encode() and json.loads(r.value)["status"] == "reopened" for r in records
        )

    lifecycle = await read_topic(
        kafka_bootstrap, services.prefix + Topic.LIFECYCLE.value, until=reopened, timeout=30
    )
    [event] = [
        json.loads(r.value)
        for r in lifecycle
        if r.key == rid.encode() and json.loads(r.value)["status"] == "reopened"
    ]
    assert (event["actor"], event["reason"]) == ("citizen", "survey_unsatisfied")
    db = mongo[services.database]
    counts = await db["satisfaction"].find_one({"_id": f"{job['team_id']}|medical"})
    assert counts is not None
    assert counts["unsatisfied"] == 1
    request = await requests_store.get_request(db, rid)
    assert request is not None
    assert "reopened" in [t["status"] for t in request["timeline"]]


async def test_notify_killed_mid_send_sends_no_second_sms(
    services: ServiceSet,
    gateway: FakeGateway,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    phone = "+8613900000002"
    gateway.hold_to[phone] = 30.0  # the gateway takes the message, its answer never comes
    try:
        receipt = await submit(services, help_request("139 0000 0002", "en", "need insulin, 2"))
        rid = receipt["request_id"]
        await wait_until(lambda: nid(rid, "received") in sms_for(gateway, rid), timeout=60)
        services.kill("notify")
    finally:
        gateway.hold_to.clear()
    services.start("notify")
    job = await dispatch_job(services, kafka_bootstrap, rid)
    wanted = {nid(rid, "received"), nid(rid, "verified"), nid(rid, "dispatched", job["leg_id"])}
    await wait_until(lambda: wanted <= set(sms_for(gateway, rid)), timeout=90)
    db = mongo[services.database]

    async def received_sent() -> bool:
        doc = await db["notifications"].find_one({"_id": nid(rid, "received")})
        return doc is not None and doc["status"] == "sent"

    await wait_until(received_sent, timeout=30)
    repeats = gateway.snapshot()["duplicate_keys"]
    assert repeats.get(nid(rid, "received")) == 1, "the resend after the crash was dropped"
    assert len(sms_for(gateway, rid)) == 3
    assert sms_for(gateway, rid)[nid(rid, "received")]["text"].startswith(
        "Zhengzhou help: your request was received"
    )

    # A plain redelivery of the dispatch record: notify recognises it and calls nobody. (The
    # crash above may already have made notify send it again under its key, when it was in the
    # batch being sent: the gateway dropped that one, and it is counted before the redelivery.)
    dispatch_nid = nid(rid, "dispatched", job["leg_id"])

    async def dispatch_sent() -> bool:
        doc = await db["notifications"].find_one({"_id": dispatch_nid})
        return doc is not None and doc["status"] == "sent"

    await wait_until(dispatch_sent, timeout=30)  # whatever the restart resent is done
    resent_before = gateway.snapshot()["duplicate_keys"].get(dispatch_nid, 0)
    await produce(
        kafka_bootstrap,
        services.prefix + Topic.DISPATCH_MEDICAL.value,
        json.dumps(job).encode(),
        key=rid.encode(),
    )

    def announced_twice(records: list[Any]) -> bool:
        outcomes = [json.loads(r.value) for r in records]
        sent = [
            o for o in outcomes if (o["notification_id"], o["status"]) == (dispatch_nid, "sent")
        ]
        return len(sent) >= 2

    # A wait, not a deadline: on a loaded machine notify may still be retrying a busy database.
    outcomes = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.NOTIFICATIONS.value,
        until=announced_twice,
        timeout=120,
    )
    assert announced_twice(outcomes), (
        f"notify did not announce the redelivered dispatch again; see {services.log_dir}"
    )
    resent_after = gateway.snapshot()["duplicate_keys"].get(dispatch_nid, 0)
    assert resent_after == resent_before, "the gateway was not called"
    assert len(sms_for(gateway, rid)) == 3


async def test_unreachable_gateway_dead_letters_and_shows_on_the_timeline(
    kafka_bootstrap: str, mongodb_uri: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    services = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        NOTIFY_CHANNELS='["sms"]',
        NOTIFY_SMS_URL=f"http://127.0.0.1:{free_port()}/messages",
        NOTIFY_SEND_ATTEMPTS="2",
        NOTIFY_SEND_BASE_DELAY_SECONDS="0.1",
    )
    services.start("intake", "notify")
    try:
        receipt = await submit(services, help_request("139 0000 0003", "zh", "需要胰岛素 3"))
        rid = receipt["request_id"]

        def dead_lettered(records: list[Any]) -> bool:
            return any(r.key == rid.encode() for r in records)

        records = await read_topic(
            kafka_bootstrap,
            services.prefix + Topic.DLQ_NOTIFY.value,
            until=dead_lettered,
            timeout=60,
        )
        [dead] = [r for r in records if r.key == rid.encode()]
        headers = {k: v.decode() for k, v in dead.headers}
        assert headers["dlq_reason"] == "delivery_failed"
        assert headers["notify_event"] == "received"
        assert headers["ce_type"] == event_type("request.submitted")
        assert json.loads(dead.value)["request_id"] == rid

        db = mongo[services.database]

        async def failure_on_timeline() -> list[dict[str, Any]]:
            doc = await requests_store.get_request(db, rid)
            timeline: list[dict[str, Any]] = (doc or {}).get("timeline", [])
            return [t for t in timeline if t["status"] == "notification_failed"]

        [entry] = await wait_until(failure_on_timeline, timeout=30)
        assert entry["reason"].startswith("sms:received:unreachable")
        doc = await requests_store.get_request(db, rid)
        assert doc is not None
        assert doc["status"] == "submitted", "a failed SMS does not change the request's status"

        outcomes = await read_topic(
            kafka_bootstrap,
            services.prefix + Topic.NOTIFICATIONS.value,
            until=lambda rs: sum(r.key == rid.encode() for r in rs) >= 2,
            timeout=30,
        )
        attempts = [json.loads(r.value) for r in outcomes if r.key == rid.encode()]
        assert [(a["status"], a["attempt"]) for a in attempts] == [("failed", 1), ("failed", 2)]
    finally:
        services.stop()
