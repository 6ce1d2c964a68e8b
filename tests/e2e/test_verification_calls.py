"""Verification calls and the review queue on the real broker and database: the queue depth
moves with the real queue, call-back attempts are logged on the review item, an item nobody
called shows as overdue, an unreachable citizen is escalated after N attempts and a wrong
number is handled by the configured rule — never dropped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import Topic
from tests.conftest import make_services
from tests.support.journey import stored_as, verify_in_review
from tests.support.kafka import read_topic, values, wait_until
from tests.support.metrics import samples
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

KEY = {"X-Verifier-Key": "carol-e2e-key"}


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    services = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        VERIFY_REVIEWER_KEYS=json.dumps({"carol": KEY["X-Verifier-Key"]}),
        VERIFY_QUEUE_GAUGE_SECONDS="0.3",
        VERIFY_CALL_SERVICE_LEVEL_SECONDS="1",
        VERIFY_CALL_MAX_UNREACHABLE="2",
        VERIFY_CALL_AFTER_UNREACHABLE="escalate",
        VERIFY_CALL_AFTER_WRONG_NUMBER="reject",
    )
    with services.running("intake", "verify"):
        yield services


def doubtful(phone: str) -> dict[str, Any]:
    """A request verify cannot place (unknown district): it goes to review."""
    return {
        "category": "transport",
        "description": "My father needs dialysis tomorrow and has no pass",
        "contact": {"name": "Li", "phone": phone},
        "location": {"district": "Chaoyang District"},
        "language": "en",
    }


async def gauge(services: ServiceSet, name: str) -> float:
    found = await samples(services, "verify", name)
    assert found, f"{name} not exported"
    return float(found[0].value)


async def into_review(services: ServiceSet, phone: str) -> str:
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=10) as http:
        response = await http.post("/v1/requests", json=doubtful(phone))
    assert response.status_code == 202, response.text
    request_id = str(response.json()["request_id"])

    async def listed() -> bool:
        async with httpx.AsyncClient(base_url=services.url("verify"), timeout=10) as http:
            items = (await http.get("/v1/review", headers=KEY)).json()["items"]
        return any(item["request_id"] == request_id for item in items)

    await wait_until(listed, timeout=30)
    return request_id


async def attempt(
    services: ServiceSet, request_id: str, outcome: str, key: str | None = None
) -> httpx.Response:
    headers = {**KEY, **({"Idempotency-Key": key} if key else {})}
    async with httpx.AsyncClient(base_url=services.url("verify"), timeout=10) as http:
        return await http.post(
            f"/v1/review/{request_id}/calls", json={"outcome": outcome}, headers=headers
        )


async def test_the_queue_depth_moves_with_the_real_queue(services: ServiceSet) -> None:
    name = "cityhelp_review_queue_depth"
    before = await gauge(services, name)
    request_id = await into_review(services, "139 0371 0001")

    async def depth_is(value: float) -> bool:
        return await gauge(services, name) == value

    await wait_until(lambda: depth_is(before + 1), timeout=15)
    await verify_in_review(services, request_id, KEY, {"district": "jinshui"})
    await wait_until(lambda: depth_is(before), timeout=15)


async def test_unreachable_twice_is_escalated_and_listed_first(services: ServiceSet) -> None:
    request_id = await into_review(services, "139 0371 0002")
    # Nobody called within the (test's one-second) service level: overdue, for the alert.
    await wait_until(
        lambda: _at_least(services, "cityhelp_verification_calls_overdue", 1), timeout=15
    )

    first = await attempt(services, request_id, "unreachable", key="call-1")
    assert first.status_code == 201, first.text
    assert (first.json()["state"], first.json()["unreachable"]) == ("open", 1)
    assert first.json()["within_service_level"] is False
    again = await attempt(services, request_id, "unreachable", key="call-1")  # a retry
    assert again.status_code == 201
    assert len(again.json()["attempts"]) == 1

    second = await attempt(services, request_id, "unreachable")
    assert second.status_code == 201, second.text
    assert (second.json()["state"], second.json()["unreachable"]) == ("escalated", 2)
    assert [a["outcome"] for a in second.json()["attempts"]] == ["unreachable", "unreachable"]

    async with httpx.AsyncClient(base_url=services.url("verify"), timeout=10) as http:
        items = (await http.get("/v1/review", headers=KEY)).json()["items"]
        task = (await http.get(f"/v1/review/{request_id}/calls", headers=KEY)).json()
    assert items[0]["request_id"] == request_id, "the escalated item is worked first"
    assert (items[0]["escalated"], items[0]["escalated_reason"]) == (True, "unreachable")
    assert task["state"] == "escalated"
    assert task["max_unreachable"] == 2

    # Still open, still callable: reached at last, the verifier decides.
    reached = await attempt(services, request_id, "reached")
    assert reached.json()["state"] == "reached"
    handled = await _sample(services, "cityhelp_verification_calls_handled_total")
    assert handled.get(("escalated", "unreachable"), 0) >= 1


async def test_a_wrong_number_is_rejected_by_the_configured_rule(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    request_id = await into_review(services, "139 0371 0003")
    response = await attempt(services, request_id, "wrong_number")
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "reject"

    doc = await stored_as(mongo[services.database], request_id, "rejected", timeout=15)
    assert doc["timeline"][-1]["actor"] == "verify:calls"
    records = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.REJECTED.value,
        until=lambda rs: any(r.key == request_id.encode() for r in rs),
    )
    [event] = [v for v in values(records) if v["request_id"] == request_id]
    assert event["reasons"] == ["wrong_number"]
    late = await attempt(services, request_id, "reached")
    assert late.status_code == 409


async def _at_least(services: ServiceSet, name: str, value: float) -> bool:
    return await gauge(services, name) >= value


async def _sample(services: ServiceSet, name: str) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["rule"], sample.labels["reason"]): float(sample.value)
        for sample in await samples(services, "verify", name)
    }
