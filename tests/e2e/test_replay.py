"""The timeline rebuilt from the topics alone (tools/replay.py) on the real stack, for a
request that went through review, two legs, a rejection back and the call-back survey; and a
stored timeline that lost an entry is reported, with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared import requests_store
from shared.topics import Topic
from tests.conftest import REPO
from tests.support.journey import (
    FOOD_AND_INSULIN,
    jobs,
    report,
    stored_as,
    submit,
    verify_in_review,
)
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

KEY = {"X-Verifier-Key": "dora-e2e-key"}
# A district outside the city, no coordinates: verify puts the request in review.
IN_REVIEW = {
    **FOOD_AND_INSULIN,
    "location": {"district": "Chaoyang District", "address": "金水路 1 号"},
}


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    return {"VERIFY_REVIEWER_KEYS": json.dumps({"dora": KEY["X-Verifier-Key"]})}


async def replay(services: ServiceSet, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "MONGODB_URI": services.mongodb_uri,
        "MONGODB_DATABASE": services.database,
        "TOPIC_PREFIX": services.prefix,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.replay",
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out.decode()


async def test_replay_rebuilds_a_reviewed_rerouted_surveyed_request(
    services: ServiceSet,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    db = mongo[services.database]
    async with httpx.AsyncClient(timeout=30) as http:
        receipt = await submit(services, IN_REVIEW)
        rid, token = receipt["request_id"], receipt["tracking_token"]
        await stored_as(db, rid, "needs_review")
        await verify_in_review(services, rid, KEY, {"district": "jinshui"})

        [community] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, rid, 1)
        [medical] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_MEDICAL, rid, 1)
        await report(services, kafka_bootstrap, community, "rejected", note="no volunteers")
        rerouted = (await jobs(services, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, rid, 2))[1]
        assert rerouted["team_id"] != community["team_id"]
        for job in (rerouted, medical):
            await report(services, kafka_bootstrap, job, "acknowledged")
            await report(services, kafka_bootstrap, job, "resolved")

        async def surveyed() -> bool:
            return await db["surveys"].find_one({"_id": rid}) is not None

        await wait_until(surveyed, timeout=60)
        answer = await http.post(
            f"{services.url('notify')}/v1/requests/{rid}/survey",
            json={"satisfied": True},
            headers={"X-Tracking-Token": token},
        )
        assert answer.status_code == 200, answer.text

    doc = await stored_as(db, rid, "closed")
    statuses = [e["status"] for e in doc["timeline"]]
    for status in ("submitted", "needs_review", "verified", "resolved", "closed"):
        assert status in statuses, statuses
    assert statuses.count("dispatched") == 3, statuses  # two legs and the re-routed one

    code, out = await replay(services, rid)
    assert code == 0, out
    assert f"{rid}: {len(doc['timeline'])} entries, as stored" in out
    code, out = await replay(services, "--all")
    assert code == 0, out
    assert "mismatched=0" in out

    # A stored timeline that lost an entry (here: resolved) no longer matches the topics.
    record = await db[requests_store.COLLECTION].find_one({"_id": rid})
    assert record is not None
    kept = [e for e in record["timeline"] if e["status"] != "resolved"]
    assert len(kept) == len(record["timeline"]) - 1
    await db[requests_store.COLLECTION].update_one({"_id": rid}, {"$set": {"timeline": kept}})
    code, out = await replay(services, rid)
    assert code == 1, out
    assert "only on the topics:" in out
    assert "resolved" in out.split("only on the topics:", 1)[1].splitlines()[0]
    code, out = await replay(services, "--all")
    assert code == 1, out
    assert "mismatched=1" in out

    code, out = await replay(services, "no-such-request")
    assert code == 2, out
