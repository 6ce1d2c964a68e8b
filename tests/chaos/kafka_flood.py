"""The Kafka flood: produce the malformed records, wait until the stages consumed them, account
for each one on the dead-letter topics, and send a valid request through all four stages after."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.intake import domain as intake_domain
from shared.stage import DLQ_ORIGIN_OFFSET, DLQ_ORIGIN_PARTITION, DLQ_ORIGIN_TOPIC, DLQ_REASON
from shared.topics import DISPATCH_TOPICS, SERVICES, ServiceName, Topic, dlq_topic
from tests.chaos.credentials import PARTNER
from tests.chaos.http_flood import alive_and_ready
from tests.chaos.http_strategies import encode
from tests.chaos.kafka_records import (
    CONSUMERS,
    BadRecord,
    bad_records,
    ce_headers,
    expected,
    now_iso,
)
from tests.chaos.personal_data import Person, request_body
from tests.support.kafka import kafka_producer
from tests.support.services import ServiceSet


@dataclass
class Produced:
    record: BadRecord
    partition: int
    offset: int
    digest: str


def _digest(value: bytes | None) -> str:
    return hashlib.sha256(value or b"").hexdigest()


async def produce_all(bootstrap: str, prefix: str, records: Sequence[BadRecord]) -> list[Produced]:
    async with kafka_producer(bootstrap, max_request_size=2 * 1024 * 1024, linger_ms=20) as p:
        futures = [
            await p.send(prefix + r.topic.value, r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        metas = await asyncio.gather(*futures)
    return [
        Produced(r, m.partition, m.offset, _digest(r.value))
        for r, m in zip(records, metas, strict=True)
    ]


async def wait_consumed(
    bootstrap: str, prefix: str, produced: Sequence[Produced], *, timeout: float
) -> dict[str, bool]:
    """Wait until every consumer group committed past every record produced to its topics."""
    targets: dict[str, dict[TopicPartition, int]] = {}
    for p in produced:
        for _, group in CONSUMERS[p.record.topic]:
            tp = TopicPartition(prefix + p.record.topic.value, p.partition)
            wanted = targets.setdefault(f"{prefix}cityhelp-{group}", {})
            wanted[tp] = max(wanted.get(tp, 0), p.offset + 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    done: dict[str, bool] = dict.fromkeys(targets, False)
    deadline = time.monotonic() + timeout
    try:
        while not all(done.values()) and time.monotonic() < deadline:
            for group, wanted in targets.items():
                if done[group]:
                    continue
                committed = await admin.list_consumer_group_offsets(group)
                done[group] = all(
                    tp in committed and committed[tp].offset >= off for tp, off in wanted.items()
                )
            if not all(done.values()):
                await asyncio.sleep(1.0)
    finally:
        await admin.close()
    return done


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record on ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, part in batch.items():
                records.extend(part)
                if part and part[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


@dataclass
class TopicTally:
    """One consumer on one topic: how its bad records were accounted for."""

    tried: int = 0
    dead_lettered: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    unaccounted: int = 0  # expected a dead letter, found none
    missing: Counter[str] = field(default_factory=Counter)  # unaccounted, by kind
    wrongly_dead: int = 0  # expected to be skipped by a rule, was dead-lettered
    altered: int = 0  # dead letter whose bytes differ from what was produced
    kinds: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class KafkaFlood:
    tallies: dict[tuple[ServiceName, Topic], TopicTally]
    consumed: dict[str, bool]
    stray_dead_letters: int  # dead letters that match no produced record
    alive: dict[str, bool]
    after_flood: dict[str, bool]  # stage → processed a valid record sent after the flood
    seconds: float

    @property
    def bad(self) -> int:
        return sum(t.unaccounted + t.wrongly_dead + t.altered for t in self.tallies.values())


async def account(
    bootstrap: str, prefix: str, produced: Sequence[Produced]
) -> tuple[dict[tuple[ServiceName, Topic], TopicTally], int]:
    by_origin = {(prefix + p.record.topic.value, p.partition, p.offset): p for p in produced}
    dead: dict[ServiceName, dict[tuple[str, int, int], tuple[str, str]]] = {}
    stray = 0
    for service in SERVICES:
        seen: dict[tuple[str, int, int], tuple[str, str]] = {}
        for rec in await read_all(bootstrap, prefix + dlq_topic(service).value):
            h = {k: (v or b"").decode("utf-8", "replace") for k, v in rec.headers}
            try:
                origin = (
                    h[DLQ_ORIGIN_TOPIC],
                    int(h[DLQ_ORIGIN_PARTITION]),
                    int(h[DLQ_ORIGIN_OFFSET]),
                )
            except (KeyError, ValueError):
                stray += 1
                continue
            if origin not in by_origin:
                stray += 1
                continue
            seen[origin] = (_digest(rec.value), h.get(DLQ_REASON, ""))
        dead[service] = seen
    tallies: dict[tuple[ServiceName, Topic], TopicTally] = {}
    for origin, p in by_origin.items():
        for service, _ in CONSUMERS[p.record.topic]:
            t = tallies.setdefault((service, p.record.topic), TopicTally())
            t.tried += 1
            t.kinds[p.record.kind] += 1
            want = expected(service, p.record)
            got = dead[service].get(origin)
            if want == "dlq" and got is not None:
                t.dead_lettered += 1
                t.reasons[got[1]] += 1
                if got[0] != p.digest:
                    t.altered += 1
            elif want == "dlq":
                t.unaccounted += 1
                t.missing[p.record.kind] += 1
            elif got is not None:
                t.wrongly_dead += 1
            else:
                t.ignored[want] += 1
    return tallies, stray


async def valid_after_flood(
    services: ServiceSet, bootstrap: str, citizen: Person, *, timeout: float = 90
) -> dict[str, bool]:
    """A valid partner record after the flood goes through intake, verify, route and notify,
    and a department's valid status report is applied by route."""
    prefix = services.prefix
    external_id = f"after-flood-{uuid.uuid4().hex[:8]}"
    value = {**request_body(citizen), "partner_id": PARTNER, "external_id": external_id}
    request_id = intake_domain.request_id_for(
        client=f"partner:{PARTNER}", idempotency_key=external_id
    )
    reached: dict[str, bool] = dict.fromkeys(SERVICES, False)
    async with kafka_producer(bootstrap) as producer:
        await producer.send_and_wait(
            prefix + Topic.PARTNER_INBOUND.value,
            encode(value, "utf8"),
            key=external_id.encode(),
            headers=ce_headers(Topic.PARTNER_INBOUND),
        )
        deadline = time.monotonic() + timeout
        job: dict[str, Any] | None = None
        async with httpx.AsyncClient(base_url=services.url("intake"), timeout=10) as http:
            while time.monotonic() < deadline:
                view = await http.get(f"/v1/requests/{request_id}")
                status = view.json().get("status") if view.status_code == 200 else None
                reached["intake"] = reached["intake"] or status is not None
                reached["verify"] = reached["verify"] or status in ("verified", "dispatched")
                if status == "dispatched":
                    break
                await asyncio.sleep(0.5)
            for topic in DISPATCH_TOPICS:
                for rec in await read_all(bootstrap, prefix + topic.value):
                    if rec.key == request_id.encode():
                        job = json.loads(rec.value)
            reached["route"] = job is not None
            if job is not None:
                report = {
                    "event_id": str(uuid.uuid4()),
                    "request_id": request_id,
                    "leg_id": job["leg_id"],
                    "department": job["department"],
                    "status": "acknowledged",
                    "occurred_at": now_iso(),
                    "actor": "chaos",
                }
                await producer.send_and_wait(
                    prefix + Topic.STATUS.value, encode(report, "ascii"), key=request_id.encode()
                )
            while time.monotonic() < deadline:
                events = {
                    json.loads(r.value)["event"]
                    for r in await read_all(bootstrap, prefix + Topic.NOTIFICATIONS.value)
                    if r.key == request_id.encode()
                }
                view = await http.get(f"/v1/requests/{request_id}")
                acknowledged = view.status_code == 200 and view.json()["status"] == "acknowledged"
                reached["notify"] = "dispatched" in events and (
                    "acknowledged" in events or job is None
                )
                reached["route"] = job is not None and acknowledged
                if reached["notify"] and reached["route"]:
                    break
                await asyncio.sleep(1.0)
    return reached


async def kafka_flood(
    services: ServiceSet, bootstrap: str, per_topic: int, *, seed: int, citizen: Person
) -> KafkaFlood:
    started = time.monotonic()
    records = [r for topic in CONSUMERS for r in bad_records(topic, per_topic, seed=seed)]
    produced = await produce_all(bootstrap, services.prefix, records)
    consumed = await wait_consumed(
        bootstrap, services.prefix, produced, timeout=120 + len(produced) / 20
    )
    tallies, stray = await account(bootstrap, services.prefix, produced)
    alive = await alive_and_ready(services)
    after = await valid_after_flood(services, bootstrap, citizen)
    return KafkaFlood(tallies, consumed, stray, alive, after, time.monotonic() - started)
