"""Verify and route as processes on the real broker and database: an urgent request overtakes
a backlog of ordinary ones at dispatch too, not only at verification.

The backlog is verified before route starts, so all of it waits on help.requests.verified
when route begins dispatching. With one FIFO there, the urgent request's verified record
would be behind the whole backlog (on its partition, and each partition is drained at about
the same pace) and its dispatch would come after nearly all of it; on its own lane, consumed
by route's own group for it, it is dispatched while most of the backlog still waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pymongo import AsyncMongoClient

from shared import requests_store
from shared.topics import DISPATCH_TOPICS, Topic, dispatch_topic
from tests.conftest import make_services
from tests.support import lanes
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet

pytestmark = pytest.mark.e2e

BACKLOG = 3000


@pytest.fixture(scope="module")
async def services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """A set of its own; the test starts verify, then route (intake and notify play no part)."""
    services = await make_services(kafka_bootstrap, mongodb_uri)
    try:
        yield services
    finally:
        services.stop()


class Dispatches:
    """Every record on the dispatch topics, from the beginning, as they are polled."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *(prefix + t.value for t in DISPATCH_TOPICS),
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def poll(self) -> list[ConsumerRecord[bytes, bytes]]:
        batch = await self.consumer.getmany(timeout_ms=200)
        for part in batch.values():
            self.records.extend(part)
        return self.records

    def first_at(self, request_id: str) -> int | None:
        """The Kafka timestamp of the request's first dispatch record, if any yet."""
        key = request_id.encode()
        stamps = [r.timestamp for r in self.records if r.key == key]
        return min(stamps) if stamps else None

    def dispatched(self, request_ids: set[str], *, at_or_before: int) -> set[str]:
        return {
            key
            for r in self.records
            if r.key is not None
            and r.timestamp <= at_or_before
            and (key := r.key.decode()) in request_ids
        }


async def test_a_p1_request_overtakes_a_backlog_at_dispatch(
    services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    db = mongo[services.database]
    backlog = lanes.backlog(BACKLOG)
    ids = [s.request_id for s in backlog]
    services.start("verify")
    await lanes.publish(kafka_bootstrap, services.prefix + Topic.SUBMITTED.value, backlog)

    async def all_verified() -> bool:
        decided = await db[requests_store.DECISIONS].count_documents(
            {"_id": {"$in": ids}, "entry.status": "verified"}
        )
        return decided == BACKLOG

    # The whole backlog is on help.requests.verified before route reads any of it.
    await wait_until(all_verified, timeout=240, every=1)

    dispatches = Dispatches(kafka_bootstrap, services.prefix)
    await dispatches.consumer.start()
    try:
        services.start("route")
        backlog_ids = set(ids)

        async def started() -> bool:
            await dispatches.poll()
            return any(
                r.key is not None and r.key.decode() in backlog_ids for r in dispatches.records
            )

        await wait_until(started, timeout=120)  # route's ordinary lane is busy with the backlog
        urgent = lanes.urgent()
        await lanes.publish(
            kafka_bootstrap, services.prefix + Topic.SUBMITTED_PRIORITY.value, [urgent]
        )

        async def urgent_dispatched() -> int | None:
            await dispatches.poll()
            return dispatches.first_at(urgent.request_id)

        p1_at = await wait_until(urgent_dispatched, timeout=180)
        # Let the records already sent with the same timestamp arrive too (the count is a bound).
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            await dispatches.poll()
        before = dispatches.dispatched(backlog_ids, at_or_before=p1_at)
        print(f"\nP1 dispatched after {len(before)} of {BACKLOG} backlog requests")
        assert len(before) < BACKLOG // 2, (
            f"{len(before)} of {BACKLOG} ordinary requests went first"
        )
        jobs = [r for r in dispatches.records if r.key == urgent.request_id.encode()]
        for record in jobs:  # each leg on its department's topic, as urgent as triage said
            job = json.loads(record.value or b"{}")
            assert record.topic == services.prefix + dispatch_topic(job["department"]).value
            assert job["priority"] == "P1"

        async def backlog_goes_on() -> int:
            await dispatches.poll()
            later = {r.key for r in dispatches.records if r.timestamp > p1_at}
            return len(later & {i.encode() for i in backlog_ids})

        assert await wait_until(backlog_goes_on, timeout=120) > 0
    finally:
        await dispatches.consumer.stop()
