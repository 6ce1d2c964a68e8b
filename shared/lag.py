"""Consumer lag per group, topic and partition, exported as ``cityhelp_consumer_lag``.

Each service measures the lag of its own consumer groups: every ``lag_interval_seconds`` it asks
the broker for the groups' committed offsets (admin client) and the topics' end offsets (a
consumer that joins no group), and sets the gauge to ``end - committed``. A partition the group
never committed counts from its beginning offset, since the stages start from the earliest
record. Labels carry the contract names (the test prefix stripped), never record contents.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from shared.metrics import CONSUMER_LAG
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer group and the topics (broker names) it reads."""

    group: str
    topics: tuple[str, ...]


def partition_lag(
    committed: Mapping[TopicPartition, int],
    beginning: Mapping[TopicPartition, int],
    end: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Records not yet consumed per partition of ``end``; never negative.

    ``committed`` holds the group's next offset to read (``-1`` or absent: nothing committed,
    so the whole retained partition is still ahead of the group).
    """
    lag: dict[TopicPartition, int] = {}
    for tp, end_offset in end.items():
        position = committed.get(tp, -1)
        if position < 0:
            position = beginning.get(tp, 0)
        lag[tp] = max(0, end_offset - position)
    return lag


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka connection options (TLS and SASL) from the shared settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=settings.kafka_ssl_cafile or None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


class LagCollector:
    """Measures the lag of ``subscriptions`` and sets the gauge, every ``interval`` seconds."""

    def __init__(
        self,
        settings: ServiceSettings,
        subscriptions: Sequence[Subscription],
        *,
        service: str,
        interval: float,
    ) -> None:
        self._settings = settings
        self._subscriptions = tuple(subscriptions)
        self._service = service
        self._interval = interval
        self._prefix = settings.topic_prefix

    def _label(self, name: str) -> str:
        return name[len(self._prefix) :] if self._prefix and name.startswith(self._prefix) else name

    async def run(self) -> None:
        """Measure until cancelled; a failed round is logged and tried again next interval."""
        options = client_options(self._settings)
        admin = AIOKafkaAdminClient(client_id=f"cityhelp-{self._service}-lag", **options)
        consumer = AIOKafkaConsumer(
            client_id=f"cityhelp-{self._service}-lag",
            group_id=None,
            enable_auto_commit=False,
            **options,
        )
        admin_started = consumer_started = False
        try:
            while True:
                try:
                    if not admin_started:
                        await admin.start()
                        admin_started = True
                    if not consumer_started:
                        await consumer.start()
                        consumer_started = True
                    await self.collect(admin, consumer)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("consumer lag not measured: %s", type(exc).__name__)
                await asyncio.sleep(self._interval)
        finally:
            await asyncio.gather(consumer.stop(), admin.close(), return_exceptions=True)

    async def collect(
        self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer
    ) -> dict[tuple[str, str, int], int]:
        """One measurement of every subscription; returns {(group, topic, partition): lag}."""
        out: dict[tuple[str, str, int], int] = {}
        for sub in self._subscriptions:
            described = await admin.describe_topics(list(sub.topics))
            partitions = [
                TopicPartition(topic["topic"], part["partition"])
                for topic in described
                if topic["error_code"] == 0
                for part in topic["partitions"]
            ]
            if not partitions:
                continue
            offsets = await admin.list_consumer_group_offsets(sub.group, partitions=partitions)
            committed = {tp: meta.offset for tp, meta in offsets.items()}
            beginning = await consumer.beginning_offsets(partitions)
            end = await consumer.end_offsets(partitions)
            for tp, lag in partition_lag(committed, beginning, end).items():
                group, topic = self._label(sub.group), self._label(tp.topic)
                CONSUMER_LAG.labels(group, topic, str(tp.partition)).set(lag)
                out[(group, topic, tp.partition)] = lag
        return out
