"""Notify in-process: the in-memory broker (TestKafkaBroker), the real database, the fake gateway.

Needs the database (``MONGODB_URI``), hence the ``integration`` marker.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo import AsyncMongoClient

from services.notify.app import build_app
from services.notify.repository import delivery_record
from services.notify.settings import NotifySettings
from shared.envelope import decode_headers, event_type
from shared.runtime import Runtime
from shared.topics import Topic
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 9, 6, 0, tzinfo=UTC)
PHONE = "+8613800138000"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Notify:
    rt: Runtime
    app: Any
    broker: Any
    gateway: FakeGateway
    db: Any
    clock: Clock
    pauses: list[float]
    seen: dict[Topic, list[tuple[dict[str, Any], dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def topic(self, topic: Topic) -> str:
        return self.rt.names(topic)

    async def publish(self, topic: Topic, value: dict[str, Any], **headers: str) -> None:
        await self.broker.publish(
            json.dumps(value, default=str).encode(),
            topic=self.topic(topic),
            key=str(value.get("request_id", "")).encode(),
            headers=headers,
        )

    def sms(self, request_id: str | None = None) -> list[dict[str, Any]]:
        messages = self.gateway.snapshot()["messages"]
        return [m for m in messages if request_id is None or request_id in m["text"]]


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway().start()
    yield gw
    gw.stop()


def _settings(mongodb_uri: str, database: str, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DATABASE": database,
        "TOPIC_PREFIX": f"c{uuid.uuid4().hex[:8]}.",
        "channels": ("sms",),
        "send_attempts": 3,
        "send_base_delay_seconds": 0.25,
        "survey_base_url": "http://notify.test",
        **overrides,
    }
    return NotifySettings(**values)


async def _running(
    settings: NotifySettings, gateway: FakeGateway, mongo: AsyncMongoClient[Any]
) -> AsyncIterator[Notify]:
    clock = Clock()
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    app = build_app(settings, create_topics=False, clock=clock, sleep=sleep)
    rt: Runtime = app.state.runtime
    db = mongo[settings.mongodb_database]
    notify = Notify(rt, app, None, gateway, db, clock, pauses)
    for topic in (Topic.NOTIFICATIONS, Topic.LIFECYCLE, Topic.DLQ_NOTIFY):

        def capture(topic: Topic = topic) -> Any:
            async def handler(body: Any, message: KafkaMessage) -> None:
                raw = message.raw_message
                assert not isinstance(raw, tuple)
                notify.seen[topic].append(
                    (json.loads(raw.value or b"null"), decode_headers(raw.headers or ()))
                )

            return handler

        rt.broker.subscriber(rt.names(topic), group_id=f"capture-{topic.value}")(capture())
    async with TestKafkaBroker(rt.broker) as broker:
        notify.broker = broker
        try:
            yield notify
        finally:
            await mongo.drop_database(settings.mongodb_database)


@pytest.fixture
async def notify(
    mongodb_uri: str, mongo: AsyncMongoClient[Any], gateway: FakeGateway
) -> AsyncIterator[Notify]:
    database = f"test_notify_{uuid.uuid4().hex[:8]}"
    settings = _settings(mongodb_uri, database, sms_url=f"{gateway.url}/messages")
    async for running in _running(settings, gateway, mongo):
        yield running


def submitted(request_id: str, language: str = "ru", category: str = "medical") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "submitted_at": START.isoformat(),
        "channel": "web",
        "tracking_token_hash": hashlib.sha256(b"token-" + request_id.encode()).hexdigest(),
        "request": {
            "category": category,
            "description": "нужен инсулин",
            "contact": {"name": "Анна", "phone": "138 0013 8000"},
            "language": language,
        },
    }


def verified(request_id: str, language: str = "en") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "submitted_at": START.isoformat(),
        "verified_at": START.isoformat(),
        "channel": "web",
        "category": "food_supply",
        "description": "food",
        "contact": {"phone": PHONE},
        "location": {},
        "language": language,
        "priority": "P3",
    }


async def store_request(db: Any, request_id: str, language: str = "ru") -> None:
    await db["requests"].insert_one(
        {
            "_id": request_id,
            "status": "dispatched",
            "category": "medical",
            "language": language,
            "contact": {"name": "Анна", "phone": "138 0013 8000"},
            "phone_normalised": PHONE,
            "tracking_token_hash": hashlib.sha256(b"token-" + request_id.encode()).hexdigest(),
            "timeline": [],
            "applied_events": [],
        }
    )


def resolved(request_id: str, event_id: str = "route-resolved-1") -> dict[str, Any]:
    """As route might publish it: no contact and no language (notify takes the record's)."""
    return {
        "event_id": event_id,
        "request_id": request_id,
        "status": "resolved",
        "at": START.isoformat(),
        "actor": "route",
        "team_id": "medical-jinshui-1",
        "department": "medical",
        "category": "medical",
    }


async def test_receipt_in_the_citizens_language_once_despite_redelivery(notify: Notify) -> None:
    await notify.publish(Topic.SUBMITTED, submitted("R-1", "ru"))
    await notify.publish(Topic.SUBMITTED, submitted("R-1", "ru"))  # redelivered
    [sms] = notify.sms("R-1")
    assert sms["to"] == PHONE
    assert sms["text"].startswith("Чжэнчжоу, помощь: ваша заявка получена")
    assert "/requests/R-1?lang=ru" in sms["text"]
    assert notify.gateway.snapshot()["duplicates"] == 0, "the resend never reached the gateway"
    outcomes = [v for v, _ in notify.seen[Topic.NOTIFICATIONS]]
    assert {(o["event"], o["channel"], o["status"], o["language"]) for o in outcomes} == {
        ("received", "sms", "sent", "ru")
    }
    stored = delivery_record(await notify.db["notifications"].find_one({"request_id": "R-1"}))
    assert stored["status"] == "sent"
    assert stored["channel"] == "sms"
    assert stored["attempts"] == 1
    assert "phone" not in stored
    assert PHONE not in json.dumps(stored, default=str)


async def test_crash_after_the_gateway_accepted_resends_the_same_key(notify: Notify) -> None:
    await notify.publish(Topic.VERIFIED, verified("R-2"))
    [first] = notify.sms("R-2")
    # As if notify died after the gateway took the message but before it stored "sent".
    await notify.db["notifications"].update_one(
        {"_id": first["idempotency_key"]}, {"$set": {"status": "pending"}}
    )
    await notify.publish(Topic.VERIFIED, verified("R-2"))
    assert len(notify.sms("R-2")) == 1
    assert notify.gateway.snapshot()["duplicates"] == 1
    stored = delivery_record(
        await notify.db["notifications"].find_one({"_id": first["idempotency_key"]})
    )
    assert stored["status"] == "sent"
    assert [a["attempt"] for a in stored["attempt_log"]] == [1, 2], "the resend follows the first"


async def test_resolution_sends_survey_and_unsatisfied_answer_reopens(notify: Notify) -> None:
    await store_request(notify.db, "R-3", language="en")
    await notify.publish(Topic.LIFECYCLE, resolved("R-3"))
    await notify.publish(Topic.LIFECYCLE, resolved("R-3", event_id="another-resolved-copy"))
    texts = [m["text"] for m in notify.sms("R-3")]
    assert len(texts) == 2, texts
    assert texts[0] == "Zhengzhou help: your request R-3 has been resolved."
    assert texts[1].startswith("Zhengzhou help: was your problem R-3 solved?")
    assert "http://notify.test/surveys/R-3?lang=en&s=" in texts[1]
    survey = await notify.db["surveys"].find_one({"_id": "R-3"})
    assert survey["team_id"] == "medical-jinshui-1"
    assert survey["category"] == "medical"

    # Another producer's record on the partner topic is intake's business: ignored here.
    await notify.publish(
        Topic.PARTNER_INBOUND, {"request_id": "x"}, ce_type=event_type("partner.request")
    )
    answer = {"request_id": "R-3", "satisfied": False, "comment": "никто не пришёл"}
    await notify.publish(Topic.PARTNER_INBOUND, answer, ce_type=event_type("survey.answer"))
    await notify.publish(Topic.PARTNER_INBOUND, answer, ce_type=event_type("survey.answer"))

    events = [v for v, _ in notify.seen[Topic.LIFECYCLE] if v["actor"] == "citizen"]
    assert {e["event_id"] for e in events} == {events[0]["event_id"]}, "one event, maybe twice"
    event = events[0]
    assert (event["status"], event["reason"]) == ("reopened", "survey_unsatisfied")
    assert (event["team_id"], event["category"], event["language"]) == (
        "medical-jinshui-1",
        "medical",
        "en",
    )
    counts = await notify.db["satisfaction"].find_one({"_id": "medical-jinshui-1|medical"})
    assert counts["unsatisfied"] == 1
    assert "satisfied" not in counts
    request = await notify.db["requests"].find_one({"_id": "R-3"})
    assert request["status"] == "reopened"
    assert [(t["status"], t["actor"]) for t in request["timeline"]] == [("reopened", "citizen")]
    assert notify.seen[Topic.DLQ_NOTIFY] == []


async def test_answer_for_a_request_without_survey_is_dead_lettered(notify: Notify) -> None:
    answer = {"request_id": "R-none", "satisfied": True}
    await notify.publish(Topic.PARTNER_INBOUND, answer, ce_type=event_type("survey.answer"))
    [(_, headers)] = notify.seen[Topic.DLQ_NOTIFY]
    assert headers["dlq_reason"] == "no_survey"


async def test_survey_over_http_needs_the_tracking_token(notify: Notify) -> None:
    await store_request(notify.db, "R-4", language="zh")
    await notify.publish(Topic.LIFECYCLE, resolved("R-4"))
    transport = httpx.ASGITransport(app=notify.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as http:
        url = "/v1/requests/R-4/survey"
        assert (await http.post(url, json={"satisfied": True})).status_code == 401
        wrong = await http.post(url, json={"satisfied": True}, headers={"x-tracking-token": "no"})
        assert wrong.status_code == 403
        token = {"x-tracking-token": "token-R-4"}
        assert (await http.post(url, json={"satisfied": "maybe"}, headers=token)).status_code == 422
        unknown = await http.post("/v1/requests/R-x/survey", json={"satisfied": True})
        assert unknown.status_code == 404
        ok = await http.post(url, json={"satisfied": True, "comment": "谢谢"}, headers=token)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"request_id": "R-4", "status": "closed"}
        again = await http.post(url, json={"satisfied": True}, headers=token)
        assert again.json()["status"] == "closed"
        changed = await http.post(url, json={"satisfied": False}, headers=token)
        assert changed.status_code == 409
    counts = await notify.db["satisfaction"].find_one({"_id": "medical-jinshui-1|medical"})
    assert counts["satisfied"] == 1, "a repeated answer is counted once"
    request = await notify.db["requests"].find_one({"_id": "R-4"})
    assert request["status"] == "closed"


async def test_rate_limit_suppresses_progress_messages_not_receipts(notify: Notify) -> None:
    limit = 8  # config/notify.toml
    for i in range(limit + 2):
        await notify.publish(Topic.VERIFIED, verified(f"V-{i}"))
    await notify.publish(Topic.SUBMITTED, submitted("V-receipt"))
    sent = [m["text"] for m in notify.sms()]
    assert sum("verified" in t for t in sent) == limit
    assert any("V-receipt" in t for t in sent), "receipts are exempt"
    suppressed = await notify.db["notifications"].find_one(
        {"request_id": f"V-{limit}", "status": "suppressed"}
    )
    assert suppressed is not None
    notify.clock.now += timedelta(hours=1)
    await notify.publish(Topic.VERIFIED, verified("V-later"))
    assert notify.sms("V-later"), "a new window, a new budget"
    # A suppressed message stays suppressed when its event comes again.
    await notify.publish(Topic.VERIFIED, verified(f"V-{limit}"))
    assert not notify.sms(f"V-{limit} ")


@pytest.fixture
async def notify_no_gateway(
    mongodb_uri: str, mongo: AsyncMongoClient[Any], gateway: FakeGateway
) -> AsyncIterator[Notify]:
    database = f"test_notify_{uuid.uuid4().hex[:8]}"
    settings = _settings(mongodb_uri, database, sms_url="http://127.0.0.1:9/messages")
    async for running in _running(settings, gateway, mongo):
        yield running


async def test_unreachable_gateway_backs_off_then_dead_letters(notify_no_gateway: Notify) -> None:
    notify = notify_no_gateway
    await store_request(notify.db, "R-5")
    await notify.publish(Topic.VERIFIED, verified("R-5", language="ru"))
    assert notify.pauses == [0.25, 0.5]
    attempts = [v for v, _ in notify.seen[Topic.NOTIFICATIONS]]
    assert [(a["status"], a["attempt"]) for a in attempts] == [
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
    ]
    assert attempts[0]["error"].startswith("unreachable:")
    [(value, headers)] = notify.seen[Topic.DLQ_NOTIFY]
    assert value["request_id"] == "R-5"
    assert headers["dlq_reason"] == "delivery_failed"
    assert headers["notify_channel"] == "sms"
    assert headers["dlq_origin_topic"] == notify.topic(Topic.VERIFIED)
    request = await notify.db["requests"].find_one({"_id": "R-5"})
    assert request["status"] == "dispatched", "the request's own status is unchanged"
    [entry] = request["timeline"]
    assert entry["status"] == "notification_failed"
    assert entry["reason"].startswith("sms:verified:unreachable")
    delivery = delivery_record(await notify.db["notifications"].find_one({"request_id": "R-5"}))
    assert delivery["status"] == "failed"
    assert len(delivery["attempt_log"]) == 3


async def test_failed_receipt_before_intake_wrote_the_record(notify_no_gateway: Notify) -> None:
    notify = notify_no_gateway
    await notify.publish(Topic.SUBMITTED, submitted("R-6"))
    request = await notify.db["requests"].find_one({"_id": "R-6"})
    assert request is not None, "created as intake would have"
    assert request["status"] == "submitted"
    assert request["tracking_token_hash"] == submitted("R-6")["tracking_token_hash"]
    assert [t["status"] for t in request["timeline"]] == ["notification_failed"]


async def test_a_receipt_to_an_unreachable_number_before_its_record_is_written_is_no_dead_letter(
    notify: Notify,
) -> None:
    body = submitted("R-unreachable")
    body["request"]["contact"]["phone"] = "00000"  # given, but no message can reach it
    await notify.publish(Topic.SUBMITTED, body)
    assert await notify.db["requests"].find_one({"_id": "R-unreachable"}) is None
    assert notify.seen[Topic.DLQ_NOTIFY] == [], "the submission's own record has its contact"
    assert notify.sms("R-unreachable") == []
