"""The brief's example request goes through all four services on the real broker and database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import Topic
from tests.support.journey import EXAMPLE, stored_as
from tests.support.kafka import read_topic
from tests.support.services import SERVICES, ServiceSet

pytestmark = pytest.mark.e2e


async def test_example_request_reaches_medical_dispatch(
    pipeline: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    async with httpx.AsyncClient(base_url=pipeline.url("intake")) as http:
        response = await http.post("/v1/requests", json=EXAMPLE)
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "submitted"
    request_id = receipt["request_id"]

    topic = pipeline.prefix + Topic.DISPATCH_MEDICAL.value
    records = await read_topic(
        kafka_bootstrap,
        topic,
        timeout=60.0,
        until=lambda rs: any(r.key == request_id.encode() for r in rs),
    )
    mine = [r for r in records if r.key == request_id.encode()]
    assert mine, "a dispatch record keyed by the request id"
    job = json.loads(mine[0].value)
    assert job["department"] == "medical"
    assert job["contact"]["phone"] == "+8613800138000"
    headers = {k: v.decode() for k, v in mine[0].headers}
    assert {"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject"} <= set(
        headers
    )

    doc = await stored_as(mongo[pipeline.database], request_id, "dispatched")
    assert [t["status"] for t in doc["timeline"]] == ["submitted", "verified", "dispatched"]
    assert doc["departments"] == ["medical"]

    notifications = await read_topic(
        kafka_bootstrap,
        pipeline.prefix + Topic.NOTIFICATIONS.value,
        timeout=60.0,
        until=lambda rs: sum(r.key == request_id.encode() for r in rs) >= 3,
    )
    events = sorted(
        json.loads(r.value)["event"] for r in notifications if r.key == request_id.encode()
    )
    assert events == ["dispatched", "received", "verified"]
    # Once the citizen was told of the dispatch, the topic is read again: one job, once.
    everything = await read_topic(kafka_bootstrap, topic, timeout=3.0, until=lambda rs: False)
    assert len([r for r in everything if r.key == request_id.encode()]) == 1


async def test_every_service_is_ready_and_serves_metrics(pipeline: ServiceSet) -> None:
    async with httpx.AsyncClient() as http:
        for service in SERVICES:
            ready = await http.get(f"{pipeline.url(service)}/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"kafka": "ok", "database": "ok", "stage": "ok"}
            metrics = await http.get(f"{pipeline.url(service)}/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert "cityhelp_messages_received_total" in metrics.text


async def test_bad_request_gets_reasons_not_5xx(pipeline: ServiceSet) -> None:
    async with httpx.AsyncClient(base_url=pipeline.url("intake")) as http:
        bad = await http.post(
            "/v1/requests", json={**EXAMPLE, "category": "pizza", "description": ""}
        )
        assert bad.status_code == 422
        fields = {p["field"] for p in bad.json()["problems"]}
        assert {"category", "description"} <= fields
        broken = await http.post(
            "/v1/requests", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert broken.json()["error"] == "malformed_json"
        huge = await http.post("/v1/requests", json={**EXAMPLE, "description": "x" * 100_000})
        assert huge.status_code == 413


@pytest.mark.parametrize("size", [200_000, 900_001])
@pytest.mark.parametrize("chunked", [False, True])
async def test_a_client_still_sending_an_oversized_body_gets_the_413(
    pipeline: ServiceSet, size: int, chunked: bool
) -> None:
    """The answer, not a reset connection, whether the body is declared or chunked: the
    client is still writing when intake refuses it (over its 64 KiB limit)."""
    body = json.dumps({**EXAMPLE, "description": "x" * size}).encode()

    async def pieces() -> Any:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]
            await asyncio.sleep(0)

    async with httpx.AsyncClient(base_url=pipeline.url("intake"), timeout=30) as http:
        for _ in range(5):  # a reset shows on some tries only
            answer = await http.post(
                "/v1/requests",
                content=pieces() if chunked else body,
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"] == "body_too_large"


async def test_idempotency_key_returns_the_original(pipeline: ServiceSet) -> None:
    async with httpx.AsyncClient(base_url=pipeline.url("intake")) as http:
        first = await http.post(
            "/v1/requests", json=EXAMPLE, headers={"Idempotency-Key": "retry-1"}
        )
        await asyncio.sleep(0.5)
        second = await http.post(
            "/v1/requests", json=EXAMPLE, headers={"Idempotency-Key": "retry-1"}
        )
    assert first.status_code == second.status_code == 202
    assert first.json()["request_id"] == second.json()["request_id"]
    assert first.json()["tracking_token"] == second.json()["tracking_token"]
