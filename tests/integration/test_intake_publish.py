"""On the real broker: intake's accepted requests go to the producer past FastStream's publish
path (``EventBus.emit_direct``), as the same records ``EventBus.emit`` writes — key, value,
partition, and the header names in the same order with the same values (apart from the time
and FastStream's random correlation id) — and each is counted once acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer

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


def published(topic: str) -> float:
    labels = {"service": "intake", "topic": topic}
    return registry().get_sample_value("cityhelp_published_records_total", labels) or 0.0


async def test_the_direct_record_is_the_one_emit_writes(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = ServiceSettings(KAFKA_BOOTSTRAP=kafka_bootstrap, TOPIC_PREFIX=prefix)
    await ensure_topics(settings)
    names = TopicNames(settings.topic_prefix)
    topic = names(Topic.SUBMITTED)
    broker = build_broker(settings, service="intake")
    bus = EventBus(broker, names, source="cityhelp/intake")
    bus.declare(Topic.SUBMITTED, schema=SubmittedRequest)
    value = SubmittedRequest(
        request_id="r-1",
        submitted_at=datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        channel="web",
        client_id="web:anonymous",
        tracking_token_hash="0" * 64,
        request=HelpRequest.model_validate(REQUEST),
    )
    before = published(topic)
    await broker.start()
    try:
        for emit in (bus.emit, bus.emit_direct):
            await emit(Topic.SUBMITTED, value, key="r-1", name="request.submitted", event_id="e-1")
    finally:
        await broker.stop()
    assert published(topic) - before == 1  # emit_direct's; emit's is FastStream's metric

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        records = [r for part in batches.values() for r in part]
    finally:
        await consumer.stop()
    assert len(records) == 2
    via_emit, direct = records
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
    assert same["ce_traceid"] == same["ce_id"] == b"e-1"
    correlation = dict(direct.headers)["correlation_id"].decode()
    assert uuid.UUID(correlation).version == 4
