"""What the delivery tests (crash points, SIGTERM, database outage, re-drive) share: a stream of
distinct citizens' requests, an exact read of topics, and the checks that nothing was lost and
no effect happened twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pymongo import AsyncMongoClient

from shared import requests_store
from shared.topics import DISPATCH_TOPICS
from tests.support.journey import EXAMPLE
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet

Records = list[ConsumerRecord[bytes, bytes]]


def citizen(tag: str, group: int, i: int) -> dict[str, Any]:
    """A verifiable medical request from a citizen of its own: ``group`` (unique per scenario
    in a database) and ``i`` make the phone number, since the same phone and words twice would
    be a duplicate."""
    return {
        **EXAMPLE,
        "description": f"{tag} 第{i}户：需要胰岛素，家里老人独居",
        "contact": {"name": "居民", "phone": f"139 {group:04d} {i:04d}"},
    }


async def read_all(bootstrap: str, topics: Iterable[str], timeout: float = 30.0) -> Records:
    """Every record on ``topics`` up to their current end: nothing missed, nothing waited for."""
    names = list(topics)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        records: Records = []
        # Without a group, the consumer is assigned every partition once it has the metadata.
        while not all(
            consumer.partitions_for_topic(n)
            and {TopicPartition(n, p) for p in consumer.partitions_for_topic(n) or ()}
            <= consumer.assignment()
            for n in names
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions for {names}")
            for part in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(part)
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        while True:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {list(topics)} to their end")
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(
                    r for r in part if r.offset < ends[TopicPartition(r.topic, r.partition)]
                )
        return records
    finally:
        await consumer.stop()


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in record.headers}


async def dispatches(services: ServiceSet, bootstrap: str) -> Records:
    return await read_all(bootstrap, [services.prefix + t.value for t in DISPATCH_TOPICS])


@dataclass
class Ledger:
    """What one fault scenario checks at the end."""

    lost: list[str] = field(default_factory=list)  # accepted, never dispatched
    repeated_legs: dict[str, int] = field(default_factory=dict)  # leg id -> records
    repeats_with_other_ids: list[str] = field(default_factory=list)  # same leg, another ce_id
    timeline_repeats: list[str] = field(default_factory=list)  # request ids
    legs: int = 0


def check_dispatch(records: Records, accepted: Sequence[str]) -> Ledger:
    """Each accepted request dispatched; how often each leg went out, and under which ids."""
    ledger = Ledger()
    wanted = set(accepted)
    mine = [r for r in records if r.key is not None and r.key.decode() in wanted]
    ledger.lost = sorted(wanted - {r.key.decode() for r in mine if r.key is not None})
    by_leg: dict[str, list[ConsumerRecord[bytes, bytes]]] = {}
    for r in mine:
        by_leg.setdefault(json.loads(r.value)["leg_id"], []).append(r)
    ledger.legs = len(by_leg)
    for leg, rs in by_leg.items():
        if len(rs) > 1:
            ledger.repeated_legs[leg] = len(rs)
            if len({headers(r)["ce_id"] for r in rs}) > 1 or len({r.value for r in rs}) > 1:
                ledger.repeats_with_other_ids.append(leg)
    return ledger


async def dispatch_ledger(
    services: ServiceSet, bootstrap: str, accepted: Sequence[str], *, timeout: float = 60
) -> Ledger:
    """The ledger of the dispatch topics once every accepted request has a job there, or at
    the timeout. A stored ``dispatched`` comes before its jobs (they go out after the batch's
    writes, and after a back-off when the batch was rewound), so one read may come early."""
    deadline = time.monotonic() + timeout
    while True:
        ledger = check_dispatch(await dispatches(services, bootstrap), accepted)
        if not ledger.lost or time.monotonic() > deadline:
            return ledger
        await asyncio.sleep(1)


async def wait_all_dispatched(db: Any, accepted: Sequence[str], *, timeout: float = 180) -> None:
    """Until the timeline of every accepted request says it was dispatched."""

    async def all_dispatched() -> bool:
        for rid in accepted:
            doc = await requests_store.get_request(db, rid)
            if doc is None or "dispatched" not in [t["status"] for t in doc["timeline"]]:
                return False
        return True

    await wait_until(all_dispatched, timeout=timeout, every=1)


async def timeline_repeats(
    mongo: AsyncMongoClient[dict[str, Any]], database: str, accepted: Sequence[str]
) -> list[str]:
    """Requests whose timeline holds one event twice, or one status from one cause twice."""
    bad = []
    for request_id in accepted:
        doc = await mongo[database]["requests"].find_one({"_id": request_id})
        if doc is None:
            bad.append(request_id)
            continue
        ids = Counter(entry["event_id"] for entry in doc.get("timeline", []))
        if any(n > 1 for n in ids.values()):
            bad.append(request_id)
    return bad


async def submit_all(
    services: ServiceSet, bodies: Sequence[dict[str, Any]], *, key_prefix: str
) -> list[str]:
    """Submit with idempotency keys; returns the accepted request ids (in order)."""
    accepted = []
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        for i, body in enumerate(bodies):
            response = await http.post(
                "/v1/requests", json=body, headers={"Idempotency-Key": f"{key_prefix}-{i}"}
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["request_id"])
    return accepted
