"""The command centre's totals on route, on the real database: counted by status, category and
district, with no personal data in the answer, and only for a command-centre key.

Called without the app's lifespan (no Kafka needed): the route reads the database only."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.route.app import build_app
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings

pytestmark = pytest.mark.integration

COMMAND_KEY = "command-desk-key-for-tests-only"
VERIFIER_KEY = "verifier-key-for-tests-only"


def request(status: str, category: str, district: str) -> dict[str, Any]:
    return {
        "_id": f"r-{uuid.uuid4().hex[:10]}",
        "status": status,
        "category": category,
        "description": "需要胰岛素，家里老人独居",
        "contact": {"name": "王女士", "phone": "+8613800138000"},
        "location": {"district": district, "address": "金水路 1 号", "lat": 34.77, "lon": 113.66},
        "timeline": [],
        "applied_events": [],
    }


@pytest.fixture
async def database(mongodb_uri: str) -> AsyncIterator[str]:
    name = f"test_cmd_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    await client[name]["requests"].insert_many(
        [
            request("dispatched", "medical", "jinshui"),
            request("dispatched", "food_supply", "jinshui"),
            request("resolved", "medical", "erqi"),
        ]
    )
    yield name
    await client.drop_database(name)
    await client.close()


async def call(app: Any, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers)


async def test_the_command_centre_sees_totals_without_personal_data(
    mongodb_uri: str, database: str
) -> None:
    settings = RouteSettings(
        MONGODB_URI=mongodb_uri,
        MONGODB_DATABASE=database,
        command_keys={"desk-1": hashlib.sha256(COMMAND_KEY.encode()).hexdigest()},
    )
    app = build_app(settings, create_topics=False)
    response = await call(app, "GET", "/v1/command/summary", {"X-Command-Key": COMMAND_KEY})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert body["by_status"] == {"dispatched": 2, "resolved": 1}
    assert body["by_category"] == {"food_supply": 1, "medical": 2}
    assert body["by_district"] == {"erqi": 1, "jinshui": 2}
    for personal in ("王女士", "13800138000", "金水路", "胰岛素", "34.77", "r-"):
        assert personal not in response.text

    refused = await call(app, "GET", "/v1/command/summary", {"X-Command-Key": VERIFIER_KEY})
    assert refused.status_code == 401


async def test_a_command_key_does_not_open_the_review_queue(
    mongodb_uri: str, database: str
) -> None:
    settings = VerifySettings(
        MONGODB_URI=mongodb_uri,
        MONGODB_DATABASE=database,
        reviewer_keys={"verifier-1": VERIFIER_KEY},
    )
    app = build_verify(settings, create_topics=False)
    assert (
        await call(app, "GET", "/v1/review", {"X-Verifier-Key": VERIFIER_KEY})
    ).status_code == 200
    assert (
        await call(app, "GET", "/v1/review", {"X-Verifier-Key": COMMAND_KEY})
    ).status_code == 401
