"""The database goes away in the middle of a stream: intake keeps accepting (a 202 means the
request is in Kafka), verify and route report not ready and back off without advancing their
offsets, and once the database is back every accepted request is dispatched, each leg once.

The database is stopped and started with ``deploy/local/stack.sh db-stop|db-start`` and the
environment the stack was started with (``make test`` exports it; by hand, export
CITYHELP_RUN_DIR, KAFKA_PORT, KAFKA_CONTROLLER_PORT and MONGODB_PORT of a private stack).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from pymongo import AsyncMongoClient

from tests.conftest import make_services
from tests.support.delivery import (
    citizen,
    dispatch_ledger,
    timeline_repeats,
    wait_all_dispatched,
)
from tests.support.kafka import wait_until
from tests.support.services import REPO, ServiceSet

pytestmark = pytest.mark.e2e

STACK = REPO / "deploy" / "local" / "stack.sh"
BEFORE, DURING, AFTER = 6, 6, 6  # requests submitted before, while and after the outage
STAGES = ("verify", "route")


def stack(command: str) -> None:
    subprocess.run([str(STACK), command], check=True, env=dict(os.environ), timeout=120)


@pytest.fixture(scope="module")
def controlled_database(mongodb_uri: str) -> str:
    """The database under test must be the one stack.sh controls, never another one."""
    port = os.environ.get("MONGODB_PORT")
    if not (port and os.environ.get("CITYHELP_RUN_DIR")):
        pytest.fail(
            "this test stops the database through deploy/local/stack.sh: run it with "
            "`make test`, or export CITYHELP_RUN_DIR and MONGODB_PORT of a private stack"
        )
    if urlparse(mongodb_uri.split(",")[0]).port != int(port):
        pytest.fail(f"MONGODB_URI does not point at the stack's database (port {port})")
    return mongodb_uri


@pytest.fixture(scope="module")
async def outage_services(
    kafka_bootstrap: str, controlled_database: str
) -> AsyncIterator[ServiceSet]:
    services = await make_services(kafka_bootstrap, controlled_database)
    services.start("intake", "verify", "route")
    try:
        yield services
    finally:
        stack("db-start")  # whatever happened, the next tests get their database back
        services.stop()


async def readiness(http: httpx.AsyncClient, services: ServiceSet, stage: str) -> dict[str, Any]:
    response = await http.get(f"{services.url(stage)}/readyz", timeout=10)
    body: dict[str, Any] = response.json()
    body["http_status"] = response.status_code
    return body


async def test_stages_back_off_while_the_database_is_down_and_lose_nothing(
    outage_services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    services = outage_services
    accepted: list[str] = []

    async def submit(http: httpx.AsyncClient, i: int) -> None:
        response = await http.post("/v1/requests", json=citizen("outage", 400, i), timeout=60)
        assert response.status_code == 202, response.text
        accepted.append(response.json()["request_id"])

    async with httpx.AsyncClient(base_url=services.url("intake")) as http:
        for i in range(BEFORE):
            await submit(http, i)

        stack("db-stop")
        try:
            # Both stages say so while the database is away (and their HTTP still answers).
            for stage in STAGES:

                async def down(stage: str = stage) -> dict[str, Any] | None:
                    body = await readiness(http, services, stage)
                    return body if body["http_status"] == 503 else None

                body = await wait_until(down, timeout=60, every=0.5)
                assert body["checks"]["database"] != "ok"
            # Intake still accepts: the request is in Kafka before the 202.
            await asyncio.gather(*(submit(http, BEFORE + i) for i in range(DURING)))
        finally:
            stack("db-start")

        for stage in ("intake", *STAGES):

            async def up(stage: str = stage) -> bool:
                return bool((await readiness(http, services, stage))["http_status"] == 200)

            await wait_until(up, timeout=90, every=0.5)
        for i in range(AFTER):
            await submit(http, BEFORE + DURING + i)

    total = BEFORE + DURING + AFTER
    assert len(set(accepted)) == total
    db = mongo[services.database]
    await wait_all_dispatched(db, accepted)
    ledger = await dispatch_ledger(services, kafka_bootstrap, accepted)
    assert ledger.lost == []
    assert ledger.repeated_legs == {}
    assert await timeline_repeats(mongo, services.database, accepted) == []
