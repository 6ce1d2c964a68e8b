"""SIGTERM in the middle of a stream: the stage finishes the record in hand, commits, leaves its
group and exits 0 within the bound; after a restart nothing is lost and — stronger than after a
crash — nothing committed comes again, so no event is published twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.topics import Topic
from tests.conftest import make_services
from tests.support.delivery import (
    citizen,
    dispatch_ledger,
    read_all,
    timeline_repeats,
    wait_all_dispatched,
)
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

TOTAL = 40
STOP_AFTER = 12  # accepted requests before the SIGTERM
BOUND_SECONDS = 20.0  # broker graceful_timeout is 15 s; uvicorn's own shutdown adds little


@pytest.fixture(scope="module")
async def stream_services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    services = await make_services(kafka_bootstrap, mongodb_uri)
    with services.running("intake", "verify", "route"):
        yield services


@pytest.mark.parametrize("victim", ["verify", "route"])
async def test_sigterm_mid_stream_exits_0_and_repeats_nothing(
    stream_services: ServiceSet,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
    victim: str,
) -> None:
    services = stream_services
    group = 200 + ["verify", "route"].index(victim)
    accepted: list[str] = []
    stopped = asyncio.Event()

    async def stream() -> None:
        async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
            for i in range(TOTAL):
                response = await http.post("/v1/requests", json=citizen(victim, group, i))
                assert response.status_code == 202, response.text
                accepted.append(response.json()["request_id"])
                if len(accepted) == STOP_AFTER:
                    stopped.set()

    submitting = asyncio.create_task(stream())
    await asyncio.wait_for(stopped.wait(), timeout=120)
    proc = services.procs[victim]
    started = time.monotonic()
    proc.send_signal(15)
    try:
        # Off the event loop: the stream keeps submitting while the victim shuts down.
        code = await asyncio.to_thread(proc.wait, BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{victim} still running {BOUND_SECONDS:.0f}s after SIGTERM")
    took = time.monotonic() - started
    assert code == 0, f"{victim} exited with {code} after SIGTERM"
    log = (services.log_dir / f"{services.prefix}{victim}.log").read_text(errors="replace")
    assert '"msg": "stopped"' in log, "the lifespan shutdown (broker stop, commits) ran to its end"
    assert '"msg": "exited after' in log, "the server returned instead of dying by the signal"

    services.start(victim)
    await submitting
    assert len(accepted) == TOTAL

    db = mongo[services.database]
    await wait_all_dispatched(db, accepted)

    ledger = await dispatch_ledger(services, kafka_bootstrap, accepted)
    assert ledger.lost == []
    assert ledger.repeated_legs == {}, f"legs dispatched twice after a clean stop ({took:.1f}s)"
    assert await timeline_repeats(mongo, services.database, accepted) == []
    # Verify publishes once per request: after a clean stop it never saw a committed record
    # again (after a crash, the record in hand would be decided again and republished).
    verified = Counter(
        json.loads(r.value)["request_id"]
        for r in await read_all(
            kafka_bootstrap,
            [services.prefix + t.value for t in (Topic.VERIFIED, Topic.VERIFIED_PRIORITY)],
        )
    )
    assert {rid: verified[rid] for rid in accepted if verified[rid] != 1} == {}
