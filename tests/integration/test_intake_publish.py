"""On the real broker: intake's accepted requests (``EventBus.emit_direct``) and the stages'
batches of events (``EventBus.emit_all``) go to the producer past FastStream's publish path, as
the same records ``EventBus.emit`` writes — key, value, partition, and the header names in the
same order with the same values (apart from the time and FastStream's random correlation id) —
and each is counted once acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream.kafka import KafkaBroker

from shared.envelope import Envelope, utcnow
from shared.kafka import EventBus, build_broker, ensure_topics
from shared.metrics import registry
from shared.schemas import HelpRequest, SubmittedRequest
from shared.settings import ServiceSettings
from shared.topics import Topic, TopicNames

pytestmark = pytest.mark.integration

REQUEST = {
    "category": "medical",
    "description": "需要胰岛素",
    "contact": {"name": "王女士", "phone": "138 0013 8000"},
    "location": {"district": "jinshui", "lat": 34.77, "lon": 113.66},
    "language": "zh",
}


def published(service: str, topic: str) -> float:
    labels = {"service": service, "topic": topic}
    return registry().get_sample_value("cityhelp_published_records_total", labels) or 0.0


async def bus_of(bootstrap: str, service: str) -> tuple[KafkaBroker, EventBus, str]:
    """A (not yet started) broker and bus of ``service`` on fresh topics, and the submitted
    topic's name, which the bus may write."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = ServiceSettings(KAFKA_BOOTSTRAP=bootstrap, TOPIC_PREFIX=prefix)
    await ensure_topics(settings)
    names = TopicNames(settings.topic_prefix)
    broker = build_broker(settings, service=service)
    bus = EventBus(broker, names, source=f"cityhelp/{service}")
    bus.declare(Topic.SUBMITTED, schema=SubmittedRequest)
    return broker, bus, names(Topic.SUBMITTED)


def submitted(request_id: str) -> SubmittedRequest:
    return SubmittedRequest(
        request_id=request_id,
        submitted_at=datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        channel="web",
        client_id="web:anonymous",
        tracking_token_hash="0" * 64,
        request=HelpRequest.model_validate(REQUEST),
    )


async def test_the_direct_record_is_the_one_emit_writes(kafka_bootstrap: str) -> None:
    broker, bus, topic = await bus_of(kafka_bootstrap, "intake")
    value = submitted("r-1")
    before = published("intake", topic)
    await broker.start()
    try:
        for emit in (bus.emit, bus.emit_direct):
            await emit(Topic.SUBMITTED, value, key="r-1", name="request.submitted", event_id="e-1")
    finally:
        await broker.stop()
    assert published("intake", topic) - before == 1  # emit_direct's; emit's is FastStream's metric

    records = await read_all(kafka_bootstrap, topic, 2)
    assert len(records) == 2
    assert_same_record(*records)
    assert dict(records[0].headers)["ce_traceid"] == dict(records[0].headers)["ce_id"] == b"e-1"


async def test_a_batch_of_events_is_the_records_emit_writes(kafka_bootstrap: str) -> None:
    broker, bus, topic = await bus_of(kafka_bootstrap, "verify")
    cause = Envelope(
        id="c-1", type="x", source="cityhelp/intake", subject="r-1", time=utcnow(), trace_id="t-1"
    )
    values = [submitted(f"r-{n}") for n in range(3)]
    before = published("verify", topic)
    await broker.start()
    try:
        for n, value in enumerate(values):
            key, event_id = f"r-{n}", f"e-{n}"
            await bus.emit(
                Topic.SUBMITTED, value, key=key, name="x.y", event_id=event_id, cause=cause
            )
        await bus.emit_all(
            [
                bus.prepare(
                    Topic.SUBMITTED, value, key=f"r-{n}", name="x.y", event_id=f"e-{n}", cause=cause
                )
                for n, value in enumerate(values)
            ]
        )
    finally:
        await broker.stop()
    assert published("verify", topic) - before == 3  # emit_all's; emit's are FastStream's metric

    records = await read_all(kafka_bootstrap, topic, 6)
    assert len(records) == 6
    by_id: dict[bytes, list[ConsumerRecord[bytes, bytes]]] = {}
    for record in records:
        by_id.setdefault(dict(record.headers)["ce_id"], []).append(record)
    assert sorted(by_id) == [b"e-0", b"e-1", b"e-2"]
    for via_emit, batched in by_id.values():
        assert_same_record(via_emit, batched)
        headers = dict(batched.headers)
        assert (headers["ce_traceid"], headers["ce_causationid"]) == (b"t-1", b"c-1")


async def read_all(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The topic's records in the order written (at least ``count``, or what came in 10 s)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    records: list[ConsumerRecord[bytes, bytes]] = []
    await consumer.start()
    try:
        for _ in range(10):
            batches = await consumer.getmany(timeout_ms=1_000)
            records.extend(r for part in batches.values() for r in part)
            if len(records) >= count:
                break
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: r.timestamp)


def assert_same_record(
    via_emit: ConsumerRecord[bytes, bytes], direct: ConsumerRecord[bytes, bytes]
) -> None:
    assert (direct.key, direct.value, direct.partition) == (
        via_emit.key,
        via_emit.value,
        via_emit.partition,
    )
    assert [name for name, _ in direct.headers] == [name for name, _ in via_emit.headers]
    assert [name for name, _ in direct.headers][:2] == ["content-type", "correlation_id"]
    varying = {"ce_time", "correlation_id"}
    same = {n: v for n, v in via_emit.headers if n not in varying}
    assert {n: v for n, v in direct.headers if n not in varying} == same
    assert same["content-type"] == b"application/json"
    correlation = dict(direct.headers)["correlation_id"].decode()
    assert uuid.UUID(correlation).version == 4
