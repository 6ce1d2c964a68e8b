"""A service killed with SIGKILL mid-stream loses nothing and dispatches nothing twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.topics import DISPATCH_TOPICS
from tests.conftest import make_services
from tests.support.journey import EXAMPLE
from tests.support.kafka import read_topic
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

TOTAL = 300
NEEDS = ("需要胰岛素，家里老人独居", "降压药快吃完了", "透析病人需要车辆送医", "孩子发烧需要退烧药")


@pytest.fixture(params=["verify", "route"])
async def crashing_pipeline(
    request: pytest.FixtureRequest, kafka_bootstrap: str, mongodb_uri: str
) -> AsyncIterator[tuple[ServiceSet, str]]:
    services = await make_services(kafka_bootstrap, mongodb_uri)
    services.start()
    try:
        yield services, str(request.param)
    finally:
        services.stop()


async def test_sigkill_mid_stream_every_request_dispatched_once(
    crashing_pipeline: tuple[ServiceSet, str], kafka_bootstrap: str
) -> None:
    services, victim = crashing_pipeline
    accepted: list[str] = []

    async def submit(http: httpx.AsyncClient, i: int) -> None:
        # A different citizen each time: the same phone and text would be a duplicate.
        body: dict[str, Any] = {
            **EXAMPLE,
            "description": f"第{i}户：{NEEDS[i % len(NEEDS)]}",
            "contact": {"name": "居民", "phone": f"139 {i // 10000:04d} {i % 10000:04d}"},
        }
        response = await http.post("/v1/requests", json=body)
        if response.status_code == 202:
            accepted.append(response.json()["request_id"])

    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        for i in range(TOTAL):
            await submit(http, i)
            if i == TOTAL // 3:
                services.kill(victim)
            if i == TOTAL // 2:
                services.start(victim)
    assert len(accepted) == TOTAL

    wanted = set(accepted)
    dispatched: list[Any] = []
    deadline = asyncio.get_running_loop().time() + 120
    while True:
        dispatched = []
        for topic in DISPATCH_TOPICS:
            dispatched += await read_topic(
                kafka_bootstrap, services.prefix + topic.value, until=lambda rs: False, timeout=1.0
            )
        if wanted <= {r.key.decode() for r in dispatched}:
            break
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(2)
    legs = Counter(json.loads(r.value)["leg_id"] for r in dispatched)
    requests = {r.key.decode() for r in dispatched}
    assert wanted - requests == set(), (
        f"{len(wanted - requests)} accepted requests never dispatched"
    )
    repeated = {leg: n for leg, n in legs.items() if n > 1}
    assert repeated == {}, f"legs dispatched more than once: {len(repeated)}"
