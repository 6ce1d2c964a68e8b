"""On the real broker: when the broker refuses an idempotent producer's sequence numbers (a
batch that timed out while the broker was away used up its numbers), the event bus renews the
producer id, so the stage's retry is delivered instead of being refused for ever."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber

from shared.kafka import EventBus, aiokafka_producer, build_broker, ensure_topics
from shared.settings import ServiceSettings
from shared.topics import Topic, TopicNames

pytestmark = pytest.mark.integration


async def test_a_refused_sequence_renews_the_producer_id(kafka_bootstrap: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = ServiceSettings(KAFKA_BOOTSTRAP=kafka_bootstrap, TOPIC_PREFIX=prefix)
    await ensure_topics(settings)
    names = TopicNames(settings.topic_prefix)
    broker = build_broker(settings, service="route")
    bus = EventBus(broker, names, source="test")
    bus.declare(Topic.STATUS)
    await broker.start()
    try:
        headers = {"ce_id": "one"}
        await bus.emit_raw(Topic.STATUS, b"first", key="k", headers=headers)
        producer = aiokafka_producer(broker)
        assert producer is not None
        manager = producer._txn_manager
        first_id = manager.producer_id
        # What a timed-out batch leaves behind: numbers used that the broker never stored.
        partitions = producer._metadata.partitions_for_topic(names(Topic.STATUS))
        for partition in partitions:
            manager.increment_sequence_number(TopicPartition(names(Topic.STATUS), partition), 7)

        with pytest.raises(OutOfOrderSequenceNumber):
            await bus.emit_raw(Topic.STATUS, b"refused", key="k", headers=headers)
        await bus.emit_raw(Topic.STATUS, b"second", key="k", headers=headers)
        assert manager.producer_id != first_id
    finally:
        await broker.stop()

    consumer = AIOKafkaConsumer(
        names(Topic.STATUS), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        values = [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    assert values == [b"first", b"second"]
