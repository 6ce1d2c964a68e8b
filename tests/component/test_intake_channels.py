"""Intake's channels on an in-memory broker (TestKafkaBroker) with an in-memory repository:
what each channel publishes, where bad input goes, and which requests are refused."""

from __future__ import annotations

import contextlib
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import bson
import httpx
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.intake import domain
from services.intake.app import build_app
from services.intake.handlers import IntakeContext
from services.intake.repository import IntakeRepository
from services.intake.settings import IntakeSettings
from shared.db import Database, Document
from shared.envelope import utcnow
from shared.stage import raw_body
from shared.topics import Topic, TopicNames

CODEC: CodecOptions[Document] = CodecOptions(document_class=dict, tz_aware=True)

pytestmark = pytest.mark.component

PREFIX = "component."
NAMES = TopicNames(PREFIX)
SECRET = "component-test-secret"
API_KEY = "component-open311-key"
REQUEST: dict[str, Any] = {
    "category": "food_supply",
    "description": "家里没有蔬菜了",
    "contact": {"name": "李先生", "phone": "139 0000 0001"},
    "location": {"district": "erqi", "lat": 34.72, "lon": 113.62},
    "language": "zh",
}


class MemoryRepository(IntakeRepository):
    """The repository's interface on dictionaries."""

    def __init__(self) -> None:
        super().__init__(cast(Database, None))
        self.requests: dict[str, Document] = {}
        self.nonces: dict[str, datetime] = {}
        self.tokens: dict[str, str] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def get(self, request_id: str) -> Document | None:
        return self.requests.get(request_id)

    async def insert_submissions(self, documents: Sequence[Document | RawBSONDocument]) -> None:
        for doc in documents:
            decoded = doc if isinstance(doc, dict) else bson.decode(doc.raw, CODEC)
            self.requests.setdefault(decoded["_id"], decoded)

    async def claim_nonce(self, *, partner_id: str, nonce: str, at: datetime) -> bool:
        key = f"{partner_id}:{nonce}"
        if key in self.nonces:
            return False
        self.nonces[key] = at
        return True

    async def save_open311_token(self, *, token_hash: str, request_id: str) -> None:
        self.tokens[token_hash] = request_id

    async def request_for_token(self, token_hash: str) -> str | None:
        return self.tokens.get(token_hash)


@dataclass
class Intake:
    http: httpx.AsyncClient
    broker: KafkaBroker
    repo: MemoryRepository
    ctx: IntakeContext
    seen: dict[str, list[tuple[bytes, dict[str, str]]]] = field(default_factory=dict)

    def values(self, topic: Topic) -> list[dict[str, Any]]:
        return [json.loads(v) for v, _ in self.seen.get(NAMES(topic), [])]

    def headers(self, topic: Topic) -> list[dict[str, str]]:
        return [h for _, h in self.seen.get(NAMES(topic), [])]


def watch(
    broker: KafkaBroker, name: str, seen: dict[str, list[tuple[bytes, dict[str, str]]]]
) -> None:
    """Record every value and its headers published on ``name``."""

    async def capture(body: bytes, message: KafkaMessage) -> None:
        raw = message.raw_message
        assert not isinstance(raw, tuple)
        headers = {k: v.decode() for k, v in raw.headers or ()}
        seen.setdefault(name, []).append((raw.value or b"", headers))

    broker.subscriber(name, group_id=f"watch-{name}", decoder=raw_body)(capture)


@contextlib.asynccontextmanager
async def running_intake(clock: Callable[[], datetime] = utcnow) -> AsyncIterator[Intake]:
    settings = IntakeSettings(
        topic_prefix=PREFIX,
        open311_api_keys=[API_KEY],
        partner_secrets={"hotline-12345": SECRET},
    )
    broker = KafkaBroker()
    repo = MemoryRepository()
    app = build_app(settings, broker=broker, create_topics=False, repo=repo, clock=clock)
    seen: dict[str, list[tuple[bytes, dict[str, str]]]] = {}
    watched = [Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY, Topic.DLQ_INTAKE]
    for topic in watched:
        watch(broker, NAMES(topic), seen)
    async with TestKafkaBroker(broker) as test_broker:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield Intake(http=http, broker=test_broker, repo=repo, ctx=app.state.intake, seen=seen)


@pytest.fixture
async def intake() -> AsyncIterator[Intake]:
    async with running_intake() as running:
        yield running


def signed(
    body: bytes, *, nonce: str, ts: float | None = None, secret: str = SECRET
) -> dict[str, str]:
    stamp = str(int(ts if ts is not None else time.time()))
    return {
        "content-type": "application/json",
        "X-Partner-Id": "hotline-12345",
        "X-Timestamp": stamp,
        "X-Nonce": nonce,
        "X-Signature": domain.partner_signature(secret, stamp, nonce, body),
    }


# --- JSON API ------------------------------------------------------------------------------


async def test_ordinary_and_urgent_requests_take_their_lanes(intake: Intake) -> None:
    ordinary = await intake.http.post("/v1/requests", json=REQUEST)
    urgent = await intake.http.post(
        "/v1/requests",
        json={**REQUEST, "contact": {"phone": "139 0000 0002"}, "special_groups": ["pregnant"]},
    )
    assert ordinary.status_code == urgent.status_code == 202
    assert [v["request_id"] for v in intake.values(Topic.SUBMITTED)] == [
        ordinary.json()["request_id"]
    ]
    assert [v["request_id"] for v in intake.values(Topic.SUBMITTED_PRIORITY)] == [
        urgent.json()["request_id"]
    ]
    assert intake.values(Topic.SUBMITTED_PRIORITY)[0]["channel"] == "web"


async def test_bad_json_requests_list_each_problem(intake: Intake) -> None:
    bad = {
        **REQUEST,
        "category": "pizza",
        "description": "",
        "location": {"lat": 91, "lon": "east"},
        "special_groups": "elderly",
    }
    response = await intake.http.post("/v1/requests", json=bad)
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert {"category", "description", "location.lat", "location.lon", "special_groups"} <= fields
    nan = await intake.http.post(
        "/v1/requests",
        content=json.dumps({**REQUEST, "location": {"lat": float("nan"), "lon": 113.6}}),
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    assert {p["field"] for p in nan.json()["problems"]} == {"location.lat"}
    assert intake.values(Topic.SUBMITTED) == []


async def test_one_phone_is_rate_limited_with_retry_after(intake: Intake) -> None:
    body = {**REQUEST, "contact": {"phone": "139-0000-0003"}}
    answers = [await intake.http.post("/v1/requests", json=body) for _ in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert answers[-1].json()["error"] == "rate_limited"
    # the same number written differently is the same phone
    again = await intake.http.post(
        "/v1/requests", json={**REQUEST, "contact": {"phone": "+86 13900000003"}}
    )
    assert again.status_code == 429
    other = await intake.http.post(
        "/v1/requests", json={**REQUEST, "contact": {"phone": "139 0000 0004"}}
    )
    assert other.status_code == 202


async def test_the_record_is_written_by_the_batch_writer_not_before_the_answer(
    intake: Intake,
) -> None:
    answer = await intake.http.post("/v1/requests", json=REQUEST)
    assert answer.status_code == 202
    request_id = answer.json()["request_id"]
    assert request_id not in intake.repo.requests  # the 202 waited for Kafka only
    recorder = intake.ctx.recorder
    assert recorder is not None
    assert recorder.waiting == 1
    await recorder.flush()
    record = intake.repo.requests[request_id]
    assert record["status"] == "submitted"
    assert [t["event_id"] for t in record["timeline"]] == record["applied_events"]


async def test_a_keyed_retry_is_answered_from_the_cache_then_from_the_database(
    intake: Intake,
) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    body = {**REQUEST, "contact": {"phone": "139 0000 0011"}}
    first = await intake.http.post("/v1/requests", json=body, headers=headers)
    again = await intake.http.post("/v1/requests", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["request_id"] == first.json()["request_id"]
    assert (first.json()["replayed"], again.json()["replayed"]) == (False, True)
    # Another process, or this one after a restart: not in its cache, found in the database.
    assert intake.ctx.recorder is not None
    await intake.ctx.recorder.flush()
    intake.ctx.receipts.clear()
    later = await intake.http.post("/v1/requests", json=body, headers=headers)
    assert later.json()["replayed"] is True
    assert later.json()["request_id"] == first.json()["request_id"]
    assert len(intake.values(Topic.SUBMITTED)) == 1


# --- partner topic -------------------------------------------------------------------------


def partner_record(external_id: str, **change: Any) -> bytes:
    value = {**REQUEST, "partner_id": "hotline-12345", "external_id": external_id, **change}
    return json.dumps(value, ensure_ascii=False).encode()


async def test_partner_records_are_published_once_and_bad_ones_dead_lettered(
    intake: Intake,
) -> None:
    inbound = NAMES(Topic.PARTNER_INBOUND)
    bad: list[tuple[bytes, str]] = [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_utf8"),
        (partner_record("B-1", category="pizza"), "schema_violation"),
        (partner_record("B-2", partner_id="stranger"), "unknown_partner"),
        (b'{"x": "' + b"a" * 300_000 + b'"}', "oversized"),
    ]
    for value, _ in bad:
        await intake.broker.publish(value, topic=inbound, key=b"bad")
    survey = json.dumps({"request_id": "r", "satisfied": True}).encode()
    await intake.broker.publish(
        survey, topic=inbound, key=b"r", headers={"ce_type": "city.help.survey.answer.v1"}
    )
    await intake.broker.publish(partner_record("A-1"), topic=inbound, key=b"A-1")

    reasons = [h["dlq_reason"] for h in intake.headers(Topic.DLQ_INTAKE)]
    assert reasons == [reason for _, reason in bad]
    assert {h["dlq_origin_topic"] for h in intake.headers(Topic.DLQ_INTAKE)} == {inbound}
    submitted = intake.values(Topic.SUBMITTED)
    expected_id = domain.partner_request_id("hotline-12345", "A-1")
    assert [(v["request_id"], v["channel"]) for v in submitted] == [(expected_id, "partner_topic")]
    assert submitted[0]["external_id"] == "A-1"

    # the same record again (a partner's retry): nothing new
    await intake.broker.publish(partner_record("A-1"), topic=inbound, key=b"A-1")
    assert len(intake.values(Topic.SUBMITTED)) == 1


# --- signed partner HTTP -------------------------------------------------------------------


async def test_signed_partner_request_is_accepted_once_per_external_id(intake: Intake) -> None:
    body = partner_record("H-1")
    first = await intake.http.post(
        "/v1/partner/requests", content=body, headers=signed(body, nonce="n1")
    )
    assert first.status_code == 202, first.text
    assert first.json()["request_id"] == domain.partner_request_id("hotline-12345", "H-1")
    again = await intake.http.post(
        "/v1/partner/requests", content=body, headers=signed(body, nonce="n2")
    )
    assert again.status_code == 202
    assert again.json()["request_id"] == first.json()["request_id"]
    assert again.json()["replayed"] is True
    assert [v["channel"] for v in intake.values(Topic.SUBMITTED)] == ["partner_http"]


async def test_unsigned_wrong_stale_and_replayed_partner_requests_get_401(intake: Intake) -> None:
    body = partner_record("H-2")
    missing = {"content-type": "application/json", "X-Partner-Id": "hotline-12345"}
    cases = {
        "missing_headers": missing,
        "bad_signature": signed(body, nonce="w1", secret="guess"),
        "stale_timestamp": signed(body, nonce="s1", ts=time.time() - 301),
    }
    for reason, headers in cases.items():
        response = await intake.http.post("/v1/partner/requests", content=body, headers=headers)
        assert response.status_code == 401, reason
        assert response.json()["error"] == reason
    headers = signed(body, nonce="r1")
    assert (
        await intake.http.post("/v1/partner/requests", content=body, headers=headers)
    ).status_code == 202
    replay = await intake.http.post("/v1/partner/requests", content=body, headers=headers)
    assert replay.status_code == 401
    assert replay.json()["error"] == "replayed"
    assert len(intake.values(Topic.SUBMITTED)) == 1


async def test_partner_body_must_be_valid_and_its_own(intake: Intake) -> None:
    other = json.dumps({**json.loads(partner_record("H-3")), "partner_id": "grid-jinshui"}).encode()
    mismatch = await intake.http.post(
        "/v1/partner/requests", content=other, headers=signed(other, nonce="m1")
    )
    assert mismatch.status_code == 403
    broken = b'{"category": '
    malformed = await intake.http.post(
        "/v1/partner/requests", content=broken, headers=signed(broken, nonce="m2")
    )
    assert malformed.status_code == 400
    invalid = partner_record("H-4", description="", location={"lat": 200})
    answer = await intake.http.post(
        "/v1/partner/requests", content=invalid, headers=signed(invalid, nonce="m3")
    )
    assert answer.status_code == 422
    assert {"description", "location.lat"} <= {p["field"] for p in answer.json()["problems"]}
    assert intake.values(Topic.SUBMITTED) == []


# --- Open311 -------------------------------------------------------------------------------

FORM = {
    "api_key": API_KEY,
    "service_code": "transport",
    "description": "需要通行证去医院复查",
    "lat": "34.75",
    "long": "113.65",
    "phone": "139 0000 0005",
    "attribute[district]": "jinshui",
}


async def test_open311_post_answers_in_json_and_xml(intake: Intake) -> None:
    as_json = await intake.http.post("/open311/v2/requests.json", data=FORM)
    assert as_json.status_code == 200, as_json.text
    [receipt] = as_json.json()
    assert receipt["service_request_id"]
    as_xml = await intake.http.post(
        "/open311/v2/requests.xml", data={**FORM, "phone": "139 0000 0006"}
    )
    assert as_xml.status_code == 200
    assert as_xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(as_xml.content)
    assert root.tag == "service_requests"
    xml_id = root.findtext("request/service_request_id")
    published = intake.values(Topic.SUBMITTED)
    assert [(v["request_id"], v["channel"]) for v in published] == [
        (receipt["service_request_id"], "open311"),
        (xml_id, "open311"),
    ]
    token = await intake.http.get(f"/open311/v2/tokens/{receipt['token']}.json")
    assert token.json() == [
        {"service_request_id": receipt["service_request_id"], "token": receipt["token"]}
    ]


async def test_open311_refusals_use_the_spec_error_format(intake: Intake) -> None:
    no_key = await intake.http.post(
        "/open311/v2/requests.json", data={k: v for k, v in FORM.items() if k != "api_key"}
    )
    assert no_key.status_code == 403
    assert no_key.json()[0]["code"] == 403
    wrong_key = await intake.http.post("/open311/v2/requests.xml", data={**FORM, "api_key": "x"})
    assert wrong_key.status_code == 403
    assert ET.fromstring(wrong_key.content).findtext("error/code") == "403"
    incomplete = await intake.http.post(
        "/open311/v2/requests.xml", data={"api_key": API_KEY, "lat": "95", "long": "1"}
    )
    assert incomplete.status_code == 400
    root = ET.fromstring(incomplete.content)
    assert root.tag == "errors"
    descriptions = [e.findtext("description") or "" for e in root.findall("error")]
    assert len(descriptions) >= 4
    as_json = await intake.http.post(
        "/open311/v2/requests.json", json={"service_code": "medical", "api_key": API_KEY}
    )
    assert as_json.status_code == 400
    assert as_json.json()[0]["code"] == 400
    unknown = await intake.http.get("/open311/v2/services/pizza.json")
    assert unknown.status_code == 404
    assert unknown.json()[0]["code"] == 404
    missing = await intake.http.get("/open311/v2/requests/nope.xml")
    assert missing.status_code == 404
    assert ET.fromstring(missing.content).tag == "errors"
    huge = await intake.http.post(
        "/open311/v2/requests.xml", data={**FORM, "description": "x" * 70_000}
    )
    assert huge.status_code == 413
    assert ET.fromstring(huge.content).findtext("error/code") == "413"
    huge_json = await intake.http.post(
        "/v1/requests", json={**REQUEST, "description": "x" * 70_000}
    )
    assert huge_json.status_code == 413
    assert huge_json.json()["error"] == "body_too_large"
    nowhere = await intake.http.get("/open311/v2/discovery.json")
    assert nowhere.status_code == 404
    assert nowhere.json()[0]["code"] == 404
    assert intake.values(Topic.SUBMITTED) == []


# --- the clock ----------------------------------------------------------------------------------

FIXED = datetime(2026, 1, 9, 6, 5, tzinfo=UTC)


async def test_intake_tells_the_time_by_its_clock_in_records_signatures_and_nonces() -> None:
    async with running_intake(clock=lambda: FIXED) as intake:
        body = partner_record("T-1")
        on_time = await intake.http.post(
            "/v1/partner/requests",
            content=body,
            headers=signed(body, nonce="t1", ts=FIXED.timestamp() + 60),
        )
        assert on_time.status_code == 202, on_time.text
        # Signed at the real time, far from intake's clock: outside the allowed skew.
        late = await intake.http.post(
            "/v1/partner/requests", content=body, headers=signed(body, nonce="t2")
        )
        assert late.status_code == 401
        assert late.json()["error"] == "stale_timestamp"
        [submitted] = intake.values(Topic.SUBMITTED)
        assert datetime.fromisoformat(submitted["submitted_at"]) == FIXED
        assert intake.repo.nonces["hotline-12345:t1"] == FIXED
