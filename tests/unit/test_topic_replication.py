"""Topic replication comes from configuration: config/topics.toml's [defaults] locally (1 and 1),
KAFKA_REPLICATION_FACTOR / KAFKA_MIN_INSYNC_REPLICAS in production (3 and 2); producers keep
acks=all whatever is set."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.kafka import build_broker, new_topic
from shared.settings import ServiceSettings
from shared.topics import Topic, TopicSpec, load_partitions, load_topic_specs

pytestmark = pytest.mark.unit

TOPICS = Path(__file__).resolve().parents[2] / "config" / "topics.toml"


def test_locally_every_topic_has_one_replica_and_needs_one_in_sync() -> None:
    specs = load_topic_specs(TOPICS)
    assert set(specs) == set(Topic)
    assert {(s.replication_factor, s.min_insync_replicas) for s in specs.values()} == {(1, 1)}
    assert {t: s.partitions for t, s in specs.items()} == {
        t: p for t, (p, _) in load_partitions(TOPICS).items()
    }


def test_production_settings_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    settings = ServiceSettings()
    specs = load_topic_specs(
        TOPICS,
        replication_factor=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
    )
    assert specs[Topic.SUBMITTED] == TopicSpec(6, 3, 2)
    assert {(s.replication_factor, s.min_insync_replicas) for s in specs.values()} == {(3, 2)}


def test_more_in_sync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match=r"min\.insync\.replicas 2"):
        load_topic_specs(TOPICS, replication_factor=1, min_insync_replicas=2)


def test_a_created_topic_carries_its_min_insync_replicas() -> None:
    created = new_topic("help.status", TopicSpec(12, 3, 2))
    assert (created.name, created.num_partitions, created.replication_factor) == (
        "help.status",
        12,
        3,
    )
    assert created.topic_configs == {"min.insync.replicas": "2"}


def test_producers_keep_acks_all_with_production_replication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    kwargs = build_broker(ServiceSettings(), service="route")._connection_kwargs
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", True)
