"""Did an event already go out? A look at the topic, for the rare redelivery that cannot tell.

A stage that publishes and then records "published" in its database has a window between the
two: a crash there leaves the event on the topic and the record unmarked, and the redelivery
would publish it a second time. Only records stored *before* this processing and still
unmarked can be in that state, so only they pay for the look: read the topic from shortly
before the record was stored to its end and search for the event's ``ce_id``. The hot path
(a record stored and published in one go) never reads the topic.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from shared.envelope import CE_ID
from shared.lag import client_options
from shared.settings import ServiceSettings
from shared.topics import Topic, TopicNames

# Producer clocks and broker append times differ a little; look back this much further.
CLOCK_SLACK = timedelta(seconds=60)


class PublishedEvents:
    """Searches topics for an event id; one search at a time per process."""

    def __init__(self, settings: ServiceSettings, *, timeout: float = 30.0) -> None:
        self._options = client_options(settings)
        self._names = TopicNames(settings.topic_prefix)
        self._timeout = timeout
        self._lock = asyncio.Lock()

    async def contains(self, topic: Topic, *, ce_id: str, since: datetime) -> bool:
        """True if a record with this ``ce_id`` is on ``topic`` (written after ``since``)."""
        name = self._names(topic)
        async with self._lock:
            consumer = AIOKafkaConsumer(
                name,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                **self._options,
            )
            await consumer.start()
            try:
                return await asyncio.wait_for(
                    self._search(consumer, name, ce_id.encode("utf-8"), since), self._timeout
                )
            finally:
                await consumer.stop()

    async def _search(
        self, consumer: AIOKafkaConsumer, topic: str, ce_id: bytes, since: datetime
    ) -> bool:
        # Without a group the consumer is assigned every partition once it has the metadata.
        while True:
            known = consumer.partitions_for_topic(topic)
            partitions = {TopicPartition(topic, p) for p in known or ()}
            if partitions and partitions <= consumer.assignment():
                break
            await consumer.getmany(timeout_ms=100)
        start_ms = int((since - CLOCK_SLACK).timestamp() * 1000)
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, start_ms))
        ends = await consumer.end_offsets(list(partitions))
        pending: dict[TopicPartition, int] = {}
        for tp in partitions:
            found = starts.get(tp)
            if found is not None and found.offset < ends[tp]:
                consumer.seek(tp, found.offset)
                pending[tp] = ends[tp]
        deadline = time.monotonic() + self._timeout
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= pending.get(tp, 0):
                        break
                    if any(k == CE_ID and v == ce_id for k, v in record.headers or ()):
                        return True
            for tp in list(pending):
                if await consumer.position(tp) >= pending[tp]:
                    del pending[tp]
        if pending:
            raise TimeoutError(f"could not read {topic} to its end")
        return False
