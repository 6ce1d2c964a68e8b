"""Verify's handlers and review queue with the in-memory broker (TestKafkaBroker) and the
database: outcomes on their topics, idempotent redelivery, duplicates, claims and decisions."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from services.verify.app import build_app
from services.verify.settings import VerifySettings
from shared import requests_store
from shared.envelope import utcnow
from shared.schemas import SubmittedRequest
from shared.topics import Topic
from tests.support.kafka import submitted_headers

pytestmark = pytest.mark.component

KEYS = {"alice": "alice-key-7f3a", "bob": "bob-key-91c2"}


def _auth(verifier: str) -> dict[str, str]:
    return {"X-Verifier-Key": KEYS[verifier]}


@dataclass
class Clock:
    """Verify's clock in these tests: the real time unless a test fixes it."""

    fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or utcnow()


@dataclass
class Harness:
    prefix: str
    broker: KafkaBroker
    db: Any
    http: httpx.AsyncClient
    out: dict[str, list[tuple[bytes, dict[str, str]]]] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)

    async def submit(self, submitted: SubmittedRequest, *, lane: Topic = Topic.SUBMITTED) -> None:
        await self.broker.publish(
            submitted.model_dump_json().encode(),
            topic=f"{self.prefix}{lane.value}",
            key=submitted.request_id.encode(),
            headers=submitted_headers(submitted),
        )

    async def claim(self, request_id: str, verifier: str) -> httpx.Response:
        return await self.http.post(f"/v1/review/{request_id}/claim", headers=_auth(verifier))

    async def decide(self, request_id: str, verifier: str, **body: Any) -> httpx.Response:
        """A verifier's decision on a claimed request (the body's fields by keyword)."""
        return await self.http.post(
            f"/v1/review/{request_id}/decision", headers=_auth(verifier), json=body
        )

    def on(self, topic: Topic) -> list[dict[str, Any]]:
        return [json.loads(value) for value, _ in self.out.get(topic.value, [])]

    def ids_on(self, topic: Topic) -> list[str]:
        return [headers["ce_id"] for _, headers in self.out.get(topic.value, [])]

    async def record(self, request_id: str) -> dict[str, Any]:
        doc = await requests_store.get_request(self.db, request_id)
        assert doc is not None
        return dict(doc)


@pytest.fixture
async def harness(mongodb_uri: str) -> AsyncIterator[Harness]:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    database = f"test_verify_{prefix.strip('.')}"
    settings = VerifySettings(
        MONGODB_URI=mongodb_uri,
        MONGODB_DATABASE=database,
        TOPIC_PREFIX=prefix,
        reviewer_keys=KEYS,
    )
    broker = KafkaBroker()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    clock = Clock()
    app = build_app(settings, broker=broker, client=client, create_topics=False, clock=clock)
    harness_out: dict[str, list[tuple[bytes, dict[str, str]]]] = {}
    outputs = (Topic.VERIFIED, Topic.VERIFIED_PRIORITY, Topic.REVIEW, Topic.REJECTED)
    for topic in (*outputs, Topic.DLQ_VERIFY):

        def collect(topic: Topic = topic) -> Any:
            async def handler(body: bytes, message: KafkaMessage) -> None:
                raw = message.raw_message
                assert not isinstance(raw, tuple)
                headers = {k: v.decode() for k, v in raw.headers}
                harness_out.setdefault(topic.value, []).append((body, headers))

            return handler

        broker.subscriber(f"{prefix}{topic.value}", group_id="test-out", decoder=_raw)(collect())
    async with TestKafkaBroker(broker):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://verify") as http:
            yield Harness(prefix, broker, client[database], http, harness_out, clock)
    await client.drop_database(database)
    await client.close()


async def _raw(message: Any) -> Any:
    return message.body


T0 = datetime(2022, 1, 9, 14, 5, tzinfo=UTC)


def submission(
    *,
    phone: str = "138 0013 8000",
    description: str = "需要胰岛素，家里老人独居",
    category: str = "medical",
    location: dict[str, Any] | None = None,
    channel: str = "web",
    at: datetime = T0,
    groups: list[str] | None = None,
) -> SubmittedRequest:
    return SubmittedRequest.model_validate(
        {
            "request_id": str(uuid.uuid4()),
            "submitted_at": at,
            "channel": channel,
            "tracking_token_hash": "h",
            "request": {
                "category": category,
                "description": description,
                "contact": {"name": "王女士", "phone": phone},
                "location": location
                if location is not None
                else {"district": "金水区", "lat": 34.77, "lon": 113.66},
                "special_groups": groups if groups is not None else ["elderly"],
                "language": "zh",
            },
        }
    )


async def test_a_request_is_verified_once_even_when_redelivered(harness: Harness) -> None:
    first = submission(phone="+86 138-0013-8000")
    await harness.submit(first)
    await harness.submit(first)  # redelivery after a crash before the commit
    verified = harness.on(Topic.VERIFIED_PRIORITY)  # a green-channel P2: the urgent lane
    assert len(verified) == 2
    assert len(set(harness.ids_on(Topic.VERIFIED_PRIORITY))) == 1, "same event id both times"
    assert harness.on(Topic.VERIFIED) == []
    assert verified[0] == verified[1]
    assert verified[0]["contact"]["phone"] == "+8613800138000"
    assert verified[0]["location"]["district"] == "jinshui"
    assert verified[0]["priority"] == "P2"
    assert verified[0]["green_channel"] is True
    record = await harness.record(first.request_id)
    assert record["status"] == "verified"
    assert record["phone_normalised"] == "+8613800138000"
    assert record["district"] == "jinshui"
    # The record as intake creates it (the decision's copy: intake's write has not landed),
    # and one verified transition despite the redelivery.
    assert [t["status"] for t in record["timeline"]] == ["submitted", "verified"]


async def test_a_request_whose_intake_record_is_lost_reads_back_whole(harness: Harness) -> None:
    """Intake answered and its write of the record never landed: verify writes no record of
    its own, yet every reader sees the request whole from the decision's copy, and a later
    stage's transition (recorded as route records a department's report) restores it."""
    lost = submission(phone="+86 138-0013-8000")
    await harness.submit(lost)
    assert await harness.db[requests_store.COLLECTION].find_one({"_id": lost.request_id}) is None

    def whole(record: dict[str, Any], statuses: list[str]) -> None:
        assert record["_id"] == record["request_id"] == lost.request_id
        assert [t["status"] for t in record["timeline"]] == statuses
        assert record["status"] == statuses[-1]
        assert (record["category"], record["description"]) == ("medical", lost.request.description)
        assert record["contact"] == lost.request.contact.model_dump()
        assert record["submitted_at"] == T0
        assert record["tracking_token_hash"] == "h"
        assert (record["channel"], record["language"]) == ("web", "zh")
        assert (record["priority"], record["district"]) == ("P2", "jinshui")
        assert record["phone_normalised"] == "+8613800138000"

    whole(await harness.record(lost.request_id), ["submitted", "verified"])
    # The command centre's totals count it too.
    [counted] = await requests_store.scan(harness.db, ("status", "category", "district"))
    assert (counted["status"], counted["category"], counted["district"]) == (
        "verified",
        "medical",
        "jinshui",
    )

    acknowledged = requests_store.transition(
        event_id="ack-1", status="acknowledged", at=utcnow() + timedelta(seconds=1), actor="route"
    )
    assert await requests_store.apply_transition(harness.db, lost.request_id, acknowledged)
    assert not await requests_store.apply_transition(harness.db, lost.request_id, acknowledged)
    whole(await harness.record(lost.request_id), ["submitted", "verified", "acknowledged"])
    stored = await harness.db[requests_store.COLLECTION].find_one({"_id": lost.request_id})
    assert stored is not None, "the first later transition restores the record"
    assert (stored["submitted_at"], stored["status"]) == (T0, "acknowledged")
    # Intake's write arriving late changes nothing (a duplicate _id).
    with pytest.raises(DuplicateKeyError):
        await harness.db[requests_store.COLLECTION].insert_one(
            requests_store.submission_document(lost, event_id="late")
        )
    whole(await harness.record(lost.request_id), ["submitted", "verified", "acknowledged"])


async def test_the_priority_lane_is_consumed_too(harness: Harness) -> None:
    urgent = submission(description="羊水破了，需要车去医院", category="transport", groups=[])
    await harness.submit(urgent, lane=Topic.SUBMITTED_PRIORITY)
    [verified] = harness.on(Topic.VERIFIED_PRIORITY)
    assert verified["request_id"] == urgent.request_id
    assert verified["priority"] == "P1"
    assert "keyword:labour" in verified["reasons"]
    assert "special_group:pregnant" in verified["reasons"]
    assert harness.on(Topic.VERIFIED) == []


async def test_an_ordinary_request_goes_on_the_ordinary_verified_lane(harness: Harness) -> None:
    ordinary = submission(description="小区封控，需要买菜", category="food_supply", groups=[])
    await harness.submit(ordinary)
    [verified] = harness.on(Topic.VERIFIED)
    assert (verified["request_id"], verified["priority"]) == (ordinary.request_id, "P3")
    assert verified["green_channel"] is False
    assert harness.on(Topic.VERIFIED_PRIORITY) == []


async def test_a_repeat_through_another_channel_collapses_into_the_original(
    harness: Harness,
) -> None:
    original = submission(phone="138 0013 8000", channel="web")
    repeat = submission(
        phone="００８６ １３８００１３８０００",
        description="需要胰岛素!! 家里老人独居",
        channel="partner_topic",
        at=T0 + timedelta(minutes=20),
    )
    other_need = submission(
        description="小区封控，需要买菜", category="food_supply", at=T0 + timedelta(minutes=30)
    )
    await harness.submit(original)
    await harness.submit(repeat)
    await harness.submit(repeat)  # redelivered: counted once
    await harness.submit(other_need)

    assert [v["request_id"] for v in harness.on(Topic.VERIFIED_PRIORITY)] == [
        original.request_id,
        other_need.request_id,
    ]
    rejected = harness.on(Topic.REJECTED)
    assert len(rejected) == 2
    assert len(set(harness.ids_on(Topic.REJECTED))) == 1
    assert rejected[0]["reasons"] == ["duplicate"]
    assert rejected[0]["duplicate_of"] == original.request_id
    assert rejected[0]["contact"]["phone"] == "+8613800138000"
    dup = await harness.record(repeat.request_id)
    assert (dup["status"], dup["duplicate_of"]) == ("duplicate", original.request_id)
    assert (await harness.record(original.request_id))["duplicates_absorbed"] == 1


async def test_rejections_and_reviews_carry_reason_codes_and_contact(harness: Harness) -> None:
    junk = submission(description="。。。。。。", phone="139 1234 5678")
    bad_phone = submission(phone="12345", description="需要买药")
    foreign = submission(phone="+7 912 345 67 89", description="Нужен инсулин маме")
    far = submission(location={"district": "金水", "lat": 34.45, "lon": 113.05})
    for s in (junk, bad_phone, foreign, far):
        await harness.submit(s)
    rejected = {r["request_id"]: r for r in harness.on(Topic.REJECTED)}
    assert rejected[junk.request_id]["reasons"] == ["empty_description"]
    assert rejected[junk.request_id]["contact"]["phone"] == "+8613912345678"
    assert rejected[bad_phone.request_id]["reasons"] == ["invalid_phone"]
    assert rejected[bad_phone.request_id]["contact"] is None
    review = {r["request_id"]: r for r in harness.on(Topic.REVIEW)}
    assert review[foreign.request_id]["reasons"][0] == "foreign_phone"
    assert review[foreign.request_id]["contact"]["phone"] == "+79123456789"
    assert review[far.request_id]["reasons"][0] == "contradictory_location"
    queued = await harness.db["review"].find_one({"_id": far.request_id})
    assert queued is not None
    assert queued["state"] == "open"


async def test_an_unreadable_record_goes_to_the_dead_letter_topic(harness: Harness) -> None:
    await harness.broker.publish(
        b"{not json", topic=f"{harness.prefix}{Topic.SUBMITTED.value}", key=b"k"
    )
    [(value, headers)] = harness.out[Topic.DLQ_VERIFY.value]
    assert value == b"{not json"
    assert headers["dlq_reason"] == "invalid_json"
    assert harness.on(Topic.VERIFIED) == []


async def _queue(harness: Harness) -> tuple[SubmittedRequest, SubmittedRequest]:
    ordinary = submission(
        location={"district": "Chaoyang District"}, groups=[], description="需要买药", at=T0
    )
    urgent = submission(
        location={"district": "Chaoyang District"},
        description="宝宝高烧不退",
        at=T0 + timedelta(minutes=5),
        phone="139 1234 5678",
    )
    await harness.submit(ordinary)
    await harness.submit(urgent)
    return ordinary, urgent


async def test_the_review_queue_needs_a_verifier_key(harness: Harness) -> None:
    await _queue(harness)
    assert (await harness.http.get("/v1/review")).status_code == 401
    wrong = await harness.http.get("/v1/review", headers={"X-Verifier-Key": "guess"})
    assert wrong.status_code == 401
    ok = await harness.http.get("/v1/review", headers=_auth("alice"))
    assert ok.status_code == 200


async def test_the_queue_lists_the_most_urgent_first(harness: Harness) -> None:
    ordinary, urgent = await _queue(harness)
    items = (await harness.http.get("/v1/review", headers=_auth("bob"))).json()["items"]
    assert [i["request_id"] for i in items] == [urgent.request_id, ordinary.request_id]
    assert items[0]["priority"] == "P1"
    assert items[0]["reasons"][0] == "unknown_district"
    assert items[0]["phone_normalised"] == "+8613912345678"


async def test_only_one_verifier_holds_a_claim(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    alice = await harness.claim(urgent.request_id, "alice")
    bob = await harness.claim(urgent.request_id, "bob")
    assert alice.status_code == 200
    assert alice.json()["claimed_by"] == "alice"
    assert bob.status_code == 409
    assert bob.json()["claimed_by"] == "alice"
    again = await harness.claim(urgent.request_id, "alice")
    assert again.status_code == 200, "the holder may renew"
    denied = await harness.decide(urgent.request_id, "bob", decision="reject", reason="prank")
    assert denied.status_code == 409
    assert denied.json()["error"] == "not_claimed"


async def test_an_abandoned_claim_can_be_taken_over(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    assert (await harness.claim(urgent.request_id, "alice")).status_code == 200
    await harness.db["review_claims"].update_one(
        {"_id": urgent.request_id},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    bob = await harness.claim(urgent.request_id, "bob")
    assert bob.status_code == 200
    assert bob.json()["claimed_by"] == "bob"
    late = await harness.decide(urgent.request_id, "alice", decision="verify")
    assert late.status_code == 409


async def test_claims_expire_by_verify_s_clock(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    claimed_at = datetime(2026, 1, 9, 6, 5, tzinfo=UTC)
    harness.clock.fixed = claimed_at
    alice = await harness.claim(urgent.request_id, "alice")
    assert alice.status_code == 200
    expires_at = datetime.fromisoformat(alice.json()["expires_at"])
    assert expires_at > claimed_at
    harness.clock.fixed = expires_at - timedelta(seconds=1)
    assert (await harness.claim(urgent.request_id, "bob")).status_code == 409
    harness.clock.fixed = expires_at + timedelta(seconds=1)
    bob = await harness.claim(urgent.request_id, "bob")
    assert bob.status_code == 200
    assert bob.json()["claimed_by"] == "bob"
    decided = await harness.decide(urgent.request_id, "bob", decision="reject", reason="prank")
    assert decided.status_code == 200, decided.text
    record = await harness.record(urgent.request_id)
    [by_bob] = [e for e in record["timeline"] if e.get("actor") == "verifier:bob"]
    assert by_bob["at"] == expires_at + timedelta(seconds=1)


async def test_a_verified_decision_with_corrections_is_published(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    await harness.claim(urgent.request_id, "alice")
    response = await harness.decide(
        urgent.request_id,
        "alice",
        decision="verify",
        corrections={"district": "Zhengdong New Area", "phone": "(0371) 6788 1234"},
        reason="called back, lives in Zhengdong",
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "verified"
    [verified] = harness.on(Topic.VERIFIED_PRIORITY)
    assert verified["request_id"] == urgent.request_id
    assert verified["verified_by"] == "verifier:alice"
    assert verified["location"]["district"] == "zhengdong"
    assert verified["contact"]["phone"] == "+8637167881234"
    assert verified["priority"] == "P1"
    record = await harness.record(urgent.request_id)
    assert record["status"] == "verified"
    assert record["timeline"][-1]["actor"] == "verifier:alice"
    assert record["timeline"][-1]["reason"] == "called back, lives in Zhengdong"
    again = await harness.decide(urgent.request_id, "alice", decision="reject")
    assert again.status_code == 409
    assert again.json()["error"] == "already_decided"
    listed = (await harness.http.get("/v1/review", headers=_auth("bob"))).json()["items"]
    assert urgent.request_id not in [i["request_id"] for i in listed]


async def test_a_verifier_merges_a_duplicate_and_rejects_a_prank(harness: Harness) -> None:
    ordinary, urgent = await _queue(harness)
    for request, body in (
        (urgent, {"decision": "duplicate", "duplicate_of": ordinary.request_id}),
        (ordinary, {"decision": "reject", "reason": "prank call"}),
    ):
        await harness.claim(request.request_id, "bob")
        response = await harness.decide(request.request_id, "bob", **body)
        assert response.status_code == 200, response.text
    dup, prank = harness.on(Topic.REJECTED)
    assert (dup["reasons"], dup["duplicate_of"]) == (["duplicate"], ordinary.request_id)
    assert dup["rejected_by"] == "verifier:bob"
    assert prank["reasons"] == ["rejected_by_verifier"]
    original = await harness.record(ordinary.request_id)
    assert original["duplicates_absorbed"] == 1
    assert original["status"] == "rejected"
    assert (await harness.record(urgent.request_id))["status"] == "duplicate"


async def test_a_decision_names_a_real_original(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    await harness.claim(urgent.request_id, "bob")
    response = await harness.decide(
        urgent.request_id, "bob", decision="duplicate", duplicate_of="no-such-request"
    )
    assert response.status_code == 422
    assert harness.on(Topic.REJECTED) == []


async def test_a_rejection_needs_a_reason_and_the_queue_shows_the_claim(harness: Harness) -> None:
    _, urgent = await _queue(harness)
    await harness.claim(urgent.request_id, "alice")
    listed = (await harness.http.get("/v1/review", headers=_auth("bob"))).json()["items"]
    [item] = [i for i in listed if i["request_id"] == urgent.request_id]
    assert item["claim"]["verifier"] == "alice"
    assert datetime.fromisoformat(item["claim"]["expires_at"]) > datetime.now(UTC)
    assert item["reasons"]
    for body in ({"decision": "reject"}, {"decision": "reject", "reason": "   "}):
        response = await harness.decide(urgent.request_id, "alice", **body)
        assert response.status_code == 422
        assert response.json()["error"] == "reason_required"
    assert harness.on(Topic.REJECTED) == []
