"""The command centre's totals on route, on the real database: counted by status, category and
district, with no personal data in the answer, and only for a command-centre key.

The requests go the real way in: posted to intake with the district as citizens write it
("金水区", "Jinshui District", "郑州市二七区", or coordinates only), verified by verify, and
counted by route's summary under verification's district codes alone. Route's HTTP routes are
called without the app's lifespan (it reads the database only)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.route.app import build_app
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings
from shared import requests_store
from tests.conftest import make_services

pytestmark = pytest.mark.integration

COMMAND_KEY = "command-desk-key-for-tests-only"
VERIFIER_KEY = "verifier-key-for-tests-only"

# (category, location as the citizen gave it, phone): the district's code is what counts.
SUBMISSIONS: list[tuple[str, dict[str, Any], str]] = [
    ("medical", {"district": "金水区", "address": "金水路 1 号", "lat": 34.8, "lon": 113.66}, "1"),
    ("food_supply", {"district": "Jinshui District", "address": "金水路 2 号"}, "2"),
    ("medical", {"lat": 34.724, "lon": 113.640}, "3"),  # coordinates only: Erqi
    ("transport", {"district": "郑州市二七区", "address": "大学路 3 号"}, "4"),
    # A name verification cannot place: held for review, counted as unknown, never as "火星区".
    ("medical", {"district": "火星区", "address": "大学路 5 号"}, "5"),
]


def body(category: str, location: dict[str, Any], n: str) -> dict[str, Any]:
    return {
        "category": category,
        "description": f"需要帮助，第 {n} 件：家里老人独居",
        "contact": {"name": "王女士", "phone": f"139 0000 00{n.zfill(2)}"},
        "location": location,
        "language": "zh",
    }


@dataclass(frozen=True)
class Posted:
    database: str
    intake_url: str
    ids: list[str]  # in the order of SUBMISSIONS


@pytest.fixture(scope="module")
async def posted(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[Posted]:
    """Intake and verify running; the submissions posted and decided."""
    services = await make_services(kafka_bootstrap, mongodb_uri)
    services.start("intake", "verify")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    try:
        services.wait_ready("intake")
        services.wait_ready("verify")
        async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
            ids = []
            for category, location, n in SUBMISSIONS:
                response = await http.post("/v1/requests", json=body(category, location, n))
                assert response.status_code == 202, response.text
                ids.append(response.json()["request_id"])
        decisions = client[services.database][requests_store.DECISIONS]
        deadline = time.monotonic() + 90
        while await decisions.count_documents({"_id": {"$in": ids}}) < len(ids):
            assert time.monotonic() < deadline, "verify did not decide every request"
            await asyncio.sleep(0.2)
        yield Posted(services.database, services.url("intake"), ids)
    finally:
        services.stop()
        await client.drop_database(services.database)
        await client.close()


@pytest.fixture
def database(posted: Posted) -> str:
    return posted.database


async def test_the_citizens_and_open311_views_show_the_district_code_not_the_raw_text(
    posted: Posted,
) -> None:
    jinshui_by_name, erqi_by_coordinates, unplaced = posted.ids[1], posted.ids[2], posted.ids[4]
    async with httpx.AsyncClient(base_url=posted.intake_url, timeout=30) as http:
        status = {
            rid: (await http.get(f"/v1/requests/{rid}")).json()["district"]
            for rid in (jinshui_by_name, erqi_by_coordinates, unplaced)
        }
        assert status == {jinshui_by_name: "jinshui", erqi_by_coordinates: "erqi", unplaced: None}
        answer = await http.get(f"/open311/v2/requests/{jinshui_by_name}.json")
        assert answer.status_code == 200, answer.text
        assert answer.json()[0]["address"] == "金水区 / Jinshui District"
        raw = await http.get(f"/open311/v2/requests/{unplaced}.json")
        assert raw.json()[0]["address"] is None  # never "火星区"


async def call(app: Any, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers)


async def test_the_command_centre_sees_totals_by_district_code_without_personal_data(
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
    assert body["total"] == 5
    assert body["by_status"] == {"needs_review": 1, "verified": 4}
    assert body["by_category"] == {"food_supply": 1, "medical": 3, "transport": 1}
    # "金水区" and "Jinshui District" are one district, and coordinates alone place a request.
    assert body["by_district"] == {"erqi": 2, "jinshui": 2, "unknown": 1}
    for raw in ("金水区", "Jinshui District", "二七区", "火星"):
        assert raw not in response.text
    for personal in ("王女士", "139", "金水路", "老人", "34.8", "113.66"):
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
