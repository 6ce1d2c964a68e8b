"""On the real broker: the topics the services create carry the configured replication and
min.insync.replicas (1 and 1 on the one local broker); a replication factor the cluster cannot
hold is refused by the broker, not silently lowered."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from shared.topics import Topic

pytestmark = pytest.mark.integration


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": None})]
        )
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    entries = response[0].resources[0][4]
    config = {str(e[0]): str(e[1]) for e in entries}
    # DescribeConfigs v1: (name, value, read_only, config_source, ...); source 1 is a topic's own
    # setting (DYNAMIC_TOPIC_CONFIG), not the broker's default that would apply without it.
    config["source"] = str(entries[0][3])
    config["replicas"] = str(len(described[0]["partitions"][0]["replicas"]))
    return config


async def test_created_topics_have_the_configured_min_insync_replicas(
    kafka_bootstrap: str,
) -> None:
    prefix = f"repl-{uuid.uuid4().hex[:8]}."
    settings = ServiceSettings(
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=prefix,
        KAFKA_REPLICATION_FACTOR=1,
        KAFKA_MIN_INSYNC_REPLICAS=1,
    )
    created = await ensure_topics(settings)
    assert f"{prefix}{Topic.SUBMITTED.value}" in created
    config = await topic_config(kafka_bootstrap, f"{prefix}{Topic.SUBMITTED.value}")
    assert config["min.insync.replicas"] == "1"
    assert config["source"] == "1"
    assert config["replicas"] == "1"


async def test_three_replicas_on_one_broker_are_refused(kafka_bootstrap: str) -> None:
    settings = ServiceSettings(
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"repl3-{uuid.uuid4().hex[:8]}.",
        KAFKA_REPLICATION_FACTOR=3,
        KAFKA_MIN_INSYNC_REPLICAS=2,
    )
    with pytest.raises(KafkaError):
        await ensure_topics(settings)
