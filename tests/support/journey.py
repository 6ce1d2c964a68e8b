"""A request's journey through the real stack, as the citizen and the departments drive it:
submit on intake, wait for its dispatch jobs, report on help.status, read the SMS it caused."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord

from shared import requests_store
from shared.db import Database
from shared.topics import Topic
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

Records = list[ConsumerRecord[bytes, bytes]]

# A citizen's ordinary request: medicine for an elderly, chronically ill person.
EXAMPLE: dict[str, Any] = {
    "category": "medical",
    "description": "需要胰岛素，家里老人独居",
    "contact": {"name": "王女士", "phone": "138 0013 8000"},
    "location": {"district": "jinshui", "address": "金水路 1 号", "lat": 34.77, "lon": 113.66},
    "special_groups": ["elderly", "chronic_illness"],
    "language": "zh",
}
# The same citizen out of food as well as insulin: one job for community, one for medical.
FOOD_AND_INSULIN: dict[str, Any] = {
    **EXAMPLE,
    "category": "food_supply",
    "description": "老人独居，家里没有吃的，胰岛素也快用完了",
    "special_groups": ["elderly", "living_alone"],
}
# A sick child filed under education: community rejects it twice and the command centre gets it.
WRONG_CATEGORY: dict[str, Any] = {
    "category": "education",
    "description": "孩子发烧三天了，需要买退烧药",
    "contact": {"name": "张女士", "phone": "137 0037 5678"},
    "location": {"district": "erqi", "address": "二七路 3 号"},
    "language": "en",
}


def help_request(phone: str, language: str, description: str) -> dict[str, Any]:
    """A request like the example from another elderly citizen: their phone, their language
    and their words."""
    return {
        **EXAMPLE,
        "description": description,
        "contact": {"name": "Анна", "phone": phone},
        "special_groups": ["elderly"],
        "language": language,
    }


async def submit(services: ServiceSet, body: dict[str, Any]) -> dict[str, Any]:
    """The citizen's request posted to intake; its receipt (request id, tracking token)."""
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        response = await http.post("/v1/requests", json=body)
    assert response.status_code == 202, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def submit_open311(
    services: ServiceSet, api_key: str, form: dict[str, Any]
) -> dict[str, Any]:
    """A request posted through an Open311 app (a form POST answered in JSON); its receipt
    (service_request_id, token)."""
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        response = await http.post("/open311/v2/requests.json", data={"api_key": api_key, **form})
    assert response.status_code == 200, response.text
    [receipt] = response.json()
    return dict(receipt)


async def stored_as(
    db: Database, request_id: str, status: str, timeout: float = 60.0
) -> dict[str, Any]:
    """The stored request once its status is ``status``, waiting for it."""

    async def reached() -> dict[str, Any] | None:
        doc = await requests_store.get_request(db, request_id)
        return doc if doc is not None and doc.get("status") == status else None

    return dict(await wait_until(reached, timeout=timeout))


async def shown_as(
    services: ServiceSet, request_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The request's public view on intake once it shows ``status``, waiting for it."""
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:

        async def reached() -> dict[str, Any] | None:
            view: dict[str, Any] = (await http.get(f"/v1/requests/{request_id}")).json()
            return view if view.get("status") == status else None

        return dict(await wait_until(reached, timeout=timeout))


def values_for(records: Records, request_id: str) -> list[dict[str, Any]]:
    """The values of a request's records (tombstones left out), in topic order."""
    return [json.loads(r.value) for r in records if r.key == request_id.encode() and r.value]


async def jobs(
    services: ServiceSet,
    bootstrap: str,
    topic: Topic,
    request_id: str,
    count: int,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """The first ``count`` dispatch jobs of a request on a topic, waiting for them."""
    records = await read_topic(
        bootstrap,
        services.prefix + topic.value,
        timeout=timeout,
        until=lambda rs: len(values_for(rs, request_id)) >= count,
    )
    found = values_for(records, request_id)
    assert len(found) >= count, f"{len(found)} jobs on {topic.value}, expected {count}"
    return found


async def everything_about(
    services: ServiceSet, bootstrap: str, topic: Topic, request_id: str, settle: float = 2.0
) -> list[dict[str, Any]]:
    """Every value about a request on a topic, read for ``settle`` seconds: what a check that
    nothing more was published counts."""
    records = await read_topic(
        bootstrap, services.prefix + topic.value, timeout=settle, until=lambda rs: False
    )
    return values_for(records, request_id)


async def dispatch_job(
    services: ServiceSet,
    bootstrap: str,
    request_id: str,
    department: str = "medical",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The request's first job on a department's dispatch topic, waiting for it."""
    topic = Topic(f"help.dispatch.{department}")
    [job, *_] = await jobs(services, bootstrap, topic, request_id, 1, timeout)
    return job


async def report(
    services: ServiceSet,
    bootstrap: str,
    job: dict[str, Any],
    status: str,
    *,
    note: str | None = None,
    echo_leg: bool = True,
) -> str:
    """What a departmental system (a plain Kafka producer) sends on help.status about one
    of its jobs; the report's event id."""
    event_id = f"{job['department']}-{uuid.uuid4().hex[:8]}"
    event: dict[str, Any] = {
        "event_id": event_id,
        "request_id": job["request_id"],
        "department": job["department"],
        "status": status,
        "actor": job["team_id"],
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    if echo_leg:
        event["leg_id"] = job["leg_id"]
    if note:
        event["note"] = note
    await produce(
        bootstrap,
        services.prefix + Topic.STATUS.value,
        json.dumps(event, ensure_ascii=False).encode(),
        key=job["request_id"].encode(),
    )
    return event_id


async def taken_up(
    services: ServiceSet, bootstrap: str, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request submitted, dispatched to medical and acknowledged by the team: its receipt and
    its job."""
    receipt = await submit(services, body)
    job = await dispatch_job(services, bootstrap, receipt["request_id"])
    await report(services, bootstrap, job, "acknowledged")
    return receipt, job


async def verify_in_review(
    services: ServiceSet, request_id: str, key: dict[str, str], corrections: dict[str, str]
) -> None:
    """A verifier (``key``: their header) claims a request in review and verifies it with
    ``corrections``."""
    async with httpx.AsyncClient(base_url=services.url("verify"), timeout=30) as http:
        claimed = await http.post(f"/v1/review/{request_id}/claim", headers=key)
        assert claimed.status_code == 200, claimed.text
        decided = await http.post(
            f"/v1/review/{request_id}/decision",
            json={"decision": "verify", "corrections": corrections},
            headers=key,
        )
        assert decided.status_code == 200, decided.text


def verified_request(request_id: str, *, phone: str, priority: str) -> dict[str, Any]:
    """A request as verify publishes it on help.requests.verified (medicine for blood pressure,
    in Erqi), verified now."""
    now = datetime.now(UTC).isoformat()
    return {
        "request_id": request_id,
        "submitted_at": now,
        "verified_at": now,
        "channel": "web",
        "category": "medical",
        "description": "需要买降压药",
        "contact": {"phone": phone},
        "location": {"district": "erqi"},
        "language": "zh",
        "priority": priority,
    }


def sms_for(gateway: FakeGateway, request_id: str) -> dict[str, dict[str, Any]]:
    """The gateway's messages about one request, by idempotency key."""
    return {
        m["idempotency_key"]: m for m in gateway.snapshot()["messages"] if request_id in m["text"]
    }
