"""The topic registry: every topic name of the public contract, in one place."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

Department = Literal["police", "community", "medical", "command"]
ServiceName = Literal["intake", "verify", "route", "notify"]

DEPARTMENTS: tuple[Department, ...] = ("police", "community", "medical", "command")
SERVICES: tuple[ServiceName, ...] = ("intake", "verify", "route", "notify")


class Topic(StrEnum):
    PARTNER_INBOUND = "help.partner.inbound"
    SUBMITTED = "help.requests.submitted"
    # Lane for requests that look urgent at intake (green channel, life-threatening words), so
    # verification never leaves them behind a backlog of ordinary requests.
    SUBMITTED_PRIORITY = "help.requests.submitted.priority"
    VERIFIED = "help.requests.verified"
    # Lane for verified requests that are urgent (P1, P2 or green channel), so route dispatches
    # them before a backlog of ordinary verified requests. Same value as help.requests.verified.
    VERIFIED_PRIORITY = "help.requests.verified.priority"
    REVIEW = "help.requests.review"
    REJECTED = "help.requests.rejected"
    DISPATCH_POLICE = "help.dispatch.police"
    DISPATCH_COMMUNITY = "help.dispatch.community"
    DISPATCH_MEDICAL = "help.dispatch.medical"
    DISPATCH_COMMAND = "help.dispatch.command"
    STATUS = "help.status"
    NOTIFICATIONS = "help.notifications"
    # Request-level lifecycle after dispatch (acknowledged, in progress, resolved, escalated,
    # reopened, closed), derived from the legs by route and from the call-back survey by notify.
    LIFECYCLE = "help.requests.lifecycle"
    DLQ_INTAKE = "help.dlq.intake"
    DLQ_VERIFY = "help.dlq.verify"
    DLQ_ROUTE = "help.dlq.route"
    DLQ_NOTIFY = "help.dlq.notify"


_DISPATCH: dict[Department, Topic] = {
    "police": Topic.DISPATCH_POLICE,
    "community": Topic.DISPATCH_COMMUNITY,
    "medical": Topic.DISPATCH_MEDICAL,
    "command": Topic.DISPATCH_COMMAND,
}
_DLQ: dict[ServiceName, Topic] = {
    "intake": Topic.DLQ_INTAKE,
    "verify": Topic.DLQ_VERIFY,
    "route": Topic.DLQ_ROUTE,
    "notify": Topic.DLQ_NOTIFY,
}
DISPATCH_TOPICS: tuple[Topic, ...] = tuple(_DISPATCH.values())


def dispatch_topic(department: Department) -> Topic:
    """The dispatch topic a department's systems subscribe to."""
    return _DISPATCH[department]


def dlq_topic(service: ServiceName) -> Topic:
    """The dead-letter topic of a service."""
    return _DLQ[service]


def department_of(topic: str) -> Department | None:
    """The department whose dispatch topic this is (prefix-insensitive), else None."""
    for department, name in _DISPATCH.items():
        if topic.endswith(name.value):
            return department
    return None


class TopicNames:
    """Resolves contract names to the names on the broker (an optional prefix isolates
    test runs that share one broker; production leaves it empty)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"


def load_partitions(path: Path) -> dict[Topic, tuple[int, int]]:
    """Partition count and replication factor per topic, from ``config/topics.toml``."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    default_partitions = int(data.get("defaults", {}).get("partitions", 3))
    replication = int(data.get("defaults", {}).get("replication_factor", 1))
    configured: dict[str, int] = {k: int(v) for k, v in data.get("topics", {}).items()}
    unknown = set(configured) - {t.value for t in Topic}
    if unknown:
        raise ValueError(f"{path}: unknown topics {sorted(unknown)}")
    return {t: (configured.get(t.value, default_partitions), replication) for t in Topic}


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created: partitions, replicas, and the in-sync replicas a write needs."""

    partitions: int
    replication_factor: int
    min_insync_replicas: int


def load_topic_specs(
    path: Path, *, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> dict[Topic, TopicSpec]:
    """Every topic's spec from ``config/topics.toml``; the replication settings given here (the
    environment's ``KAFKA_REPLICATION_FACTOR``, ``KAFKA_MIN_INSYNC_REPLICAS``) override its
    ``[defaults]``."""
    defaults = tomllib.loads(path.read_text(encoding="utf-8")).get("defaults", {})
    replicas = replication_factor or int(defaults.get("replication_factor", 1))
    min_isr = min_insync_replicas or int(defaults.get("min_insync_replicas", 1))
    if not 1 <= min_isr <= replicas:
        raise ValueError(
            f"min.insync.replicas {min_isr} must be between 1 and the replication factor {replicas}"
        )
    return {
        topic: TopicSpec(partitions, replicas, min_isr)
        for topic, (partitions, _) in load_partitions(path).items()
    }
