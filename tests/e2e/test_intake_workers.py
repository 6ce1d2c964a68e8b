"""Intake in several HTTP worker processes (INTAKE_HTTP_WORKERS): one port, metrics summed
over the workers, a keyed retry answered as a replay whichever worker gets it, the request
record written off the request path, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.conftest import make_services
from tests.support.kafka import wait_until

pytestmark = pytest.mark.e2e

REQUESTS = 24


def request_body(i: int) -> dict[str, Any]:
    return {
        "category": "food_supply",
        "description": "家里没有蔬菜了，需要买菜",
        "contact": {"name": "张先生", "phone": f"139 2{i:03d} 0{i % 10}11"},
        "location": {"district": "jinshui", "lat": 34.77, "lon": 113.66},
        "language": "zh",
    }


def accepted_count(metrics: str) -> float:
    pattern = (
        r'^cityhelp_http_requests_total\{[^}]*route="/v1/requests"[^}]*status="202"[^}]*\} (\S+)$'
    )
    return sum(float(v) for v in re.findall(pattern, metrics, flags=re.MULTILINE))


async def test_two_workers_share_the_port_the_metrics_and_the_replays(
    kafka_bootstrap: str, mongodb_uri: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    services = await make_services(kafka_bootstrap, mongodb_uri, INTAKE_HTTP_WORKERS="2")
    services.start("intake")
    try:
        async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/requests", json=request_body(i)) for i in range(REQUESTS))
            )
            assert [a.status_code for a in answers] == [202] * REQUESTS
            keyed = await http.post(
                "/v1/requests", json=request_body(99), headers={"Idempotency-Key": "w-1"}
            )
            assert keyed.status_code == 202
            request_id = keyed.json()["request_id"]
            db = mongo[services.database]

            async def stored() -> bool:
                return await db["requests"].find_one({"_id": request_id}) is not None

            await wait_until(stored, timeout=10, every=0.1)
            # New connections each time: the retries reach both workers.
            retries = []
            for _ in range(4):  # the phone's bucket allows 5 in a row
                async with httpx.AsyncClient(base_url=services.url("intake")) as fresh:
                    retries.append(
                        await fresh.post(
                            "/v1/requests",
                            json=request_body(99),
                            headers={"Idempotency-Key": "w-1"},
                        )
                    )
            assert {r.json()["request_id"] for r in retries} == {request_id}
            assert all(r.json()["replayed"] for r in retries)
            metrics = (await http.get("/metrics")).text
            assert accepted_count(metrics) == REQUESTS + 1 + len(retries)
            ids = [a.json()["request_id"] for a in answers]

            async def all_stored() -> bool:
                count = await db["requests"].count_documents({"_id": {"$in": ids}})
                return bool(count == REQUESTS)

            await wait_until(all_stored, timeout=20, every=0.2)
        assert services.terminate("intake") == 0
    finally:
        services.stop()
