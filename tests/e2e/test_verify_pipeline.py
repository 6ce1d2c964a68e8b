"""Verify as a process on the real broker and database: a repeat through a second channel (an
Open311 form, then the partner topic) collapses into the original, verifiers share the review
queue without clashing, and the priority lane overtakes a backlog of ordinary requests."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.intake import domain as intake_domain
from shared import requests_store
from shared.topics import Topic
from tests.conftest import make_services
from tests.support import lanes
from tests.support.delivery import read_all
from tests.support.journey import stored_as, submit_open311
from tests.support.kafka import produce, read_topic, values, wait_until
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

KEYS = {"alice": "alice-e2e-key", "bob": "bob-e2e-key"}
API_KEY = "e2e-open311-key"
PARTNER = "hotline-12345"
BACKLOG = 3000


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """Intake and verify only: route and notify play no part here."""
    services = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        VERIFY_REVIEWER_KEYS=json.dumps(KEYS),
        INTAKE_OPEN311_API_KEYS=API_KEY,
    )
    with services.running("intake", "verify"):
        yield services


def _body(phone: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "category": "medical",
        "description": description,
        "contact": {"name": "王女士", "phone": phone},
        "location": {"district": "金水区", "lat": 34.77, "lon": 113.66},
        "special_groups": ["elderly", "chronic_illness"],
        "language": "zh",
        **extra,
    }


async def test_a_repeat_through_a_second_channel_collapses_into_the_original(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    """The citizen files through an Open311 app (a form POST); the 12345 hotline then passes the
    same need on, written differently, on the partner topic. Two channels, one request."""
    db = mongo[services.database]
    form = {
        "service_code": "medical",
        "description": "需要胰岛素，家里老人独居",
        "phone": "138 0013 8000",
        "first_name": "女士",
        "last_name": "王",
        "lat": "34.77",
        "long": "113.66",
        "attribute[district]": "金水区",
        "attribute[special_groups][]": ["elderly", "chronic_illness"],
        "attribute[language]": "zh",
    }
    original = (await submit_open311(services, API_KEY, form))["service_request_id"]
    await stored_as(db, original, "verified", timeout=30)

    external_id = f"hotline-{uuid.uuid4().hex[:8]}"
    relayed = {
        **_body("+86 138-0013-8000", "家里老人独居，需要胰岛素！！"),
        "partner_id": PARTNER,
        "external_id": external_id,
    }
    await produce(
        kafka_bootstrap,
        services.prefix + Topic.PARTNER_INBOUND.value,
        json.dumps(relayed, ensure_ascii=False).encode(),
        key=external_id.encode(),
    )
    repeat = intake_domain.partner_request_id(PARTNER, external_id)
    assert repeat != original

    dup = await stored_as(db, repeat, "duplicate", timeout=60)
    assert dup["duplicate_of"] == original
    first_doc = await requests_store.get_request(db, original)
    assert first_doc is not None
    assert (first_doc["channel"], dup["channel"]) == ("open311", "partner_topic")
    assert (first_doc["duplicates_absorbed"], first_doc["absorbed"]) == (1, [repeat])

    prefix = services.prefix
    rejected = await read_topic(
        kafka_bootstrap,
        prefix + Topic.REJECTED.value,
        timeout=15,
        until=lambda rs: any(r.key == repeat.encode() for r in rs),
    )
    [event] = [v for v in values(rejected) if v["request_id"] == repeat]
    assert (event["reasons"], event["duplicate_of"]) == (["duplicate"], original)
    lanes = [prefix + t.value for t in (Topic.VERIFIED, Topic.VERIFIED_PRIORITY)]
    verified = await read_all(kafka_bootstrap, lanes)
    mine = [v["request_id"] for v in values(verified) if v["request_id"] in (original, repeat)]
    assert mine == [original], "one request goes on"


async def test_two_verifiers_claim_one_review_and_only_one_decides(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    db = mongo[services.database]
    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        response = await http.post(
            "/v1/requests",
            json=_body(
                "139 1234 5678",
                "My father needs dialysis tomorrow and has no pass",
                location={"district": "Chaoyang District"},
                category="transport",
                special_groups=[],
                language="en",
            ),
        )
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    await stored_as(db, request_id, "needs_review", timeout=30)

    async with httpx.AsyncClient(base_url=services.url("verify")) as http:
        queue = await http.get("/v1/review", headers={"X-Verifier-Key": KEYS["alice"]})
        assert queue.status_code == 200
        [item] = queue.json()["items"]
        assert (item["request_id"], item["priority"]) == (request_id, "P1")
        assert item["reasons"][0] == "unknown_district"

        path = f"/v1/review/{request_id}/claim"
        claims = await asyncio.gather(
            *(http.post(path, headers={"X-Verifier-Key": KEYS[v]}) for v in ("alice", "bob"))
        )
        assert sorted(c.status_code for c in claims) == [200, 409]
        winner = next(c.json()["claimed_by"] for c in claims if c.status_code == 200)
        loser = "bob" if winner == "alice" else "alice"

        body = {"decision": "verify", "corrections": {"district": "金水"}, "reason": "called"}
        refused = await http.post(
            f"/v1/review/{request_id}/decision",
            json=body,
            headers={"X-Verifier-Key": KEYS[loser]},
        )
        assert refused.status_code == 409
        decided = await http.post(
            f"/v1/review/{request_id}/decision",
            json=body,
            headers={"X-Verifier-Key": KEYS[winner]},
        )
        assert decided.status_code == 200, decided.text

    records = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.VERIFIED_PRIORITY.value,  # a P1: the urgent lane
        timeout=15,
        until=lambda rs: any(r.key == request_id.encode() for r in rs),
    )
    [event] = [v for v in values(records) if v["request_id"] == request_id]
    assert event["verified_by"] == f"verifier:{winner}"
    assert event["location"]["district"] == "jinshui"
    assert event["priority"] == "P1"
    doc = await requests_store.get_request(db, request_id)
    assert doc is not None
    statuses = [t["status"] for t in doc["timeline"] if t["status"] != "submitted"]
    assert statuses == ["needs_review", "verified"]
    assert doc["timeline"][-1]["actor"] == f"verifier:{winner}"


async def test_a_p1_request_overtakes_a_backlog_of_ordinary_ones(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    db = mongo[services.database]
    backlog = lanes.backlog(BACKLOG)
    await lanes.publish(kafka_bootstrap, services.prefix + Topic.SUBMITTED.value, backlog)
    ids = [s.request_id for s in backlog]

    async def started() -> bool:
        found = await db[requests_store.DECISIONS].find_one({"_id": {"$in": ids[:50]}})
        return found is not None

    await wait_until(started, timeout=60)  # the ordinary lane is busy with the backlog
    urgent = lanes.urgent()
    await lanes.publish(kafka_bootstrap, services.prefix + Topic.SUBMITTED_PRIORITY.value, [urgent])

    doc = await stored_as(db, urgent.request_id, "verified", timeout=60)
    assert doc["priority"] == "P1"
    p1_at = doc["verification"]["at"]
    before = await db[requests_store.DECISIONS].count_documents(
        {"_id": {"$in": ids}, "entry.at": {"$lte": p1_at}}
    )
    print(f"\nP1 verified after {before} of {BACKLOG} backlog requests")
    assert before < BACKLOG // 2, f"{before} of {BACKLOG} ordinary requests went first"
    later = await wait_until(
        lambda: db[requests_store.DECISIONS].count_documents(
            {"_id": {"$in": ids}, "entry.at": {"$gt": p1_at}}
        ),
        timeout=60,
    )
    assert later > 0, "the backlog goes on after the urgent request"
