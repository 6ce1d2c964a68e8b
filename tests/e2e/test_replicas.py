"""Each stage scales alone: two processes of one stage share its consumer groups; one of them
is killed with SIGKILL under load and restarted, the partitions move between them, and every
request is still dispatched once and every message sent once."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.notify.domain import notification_id
from shared.topics import DISPATCH_TOPICS
from tests.conftest import sms_services
from tests.support.journey import EXAMPLE
from tests.support.kafka import read_topic, wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

TOTAL = 240
NEEDS = (
    "需要胰岛素，家里老人独居",
    "降压药快吃完了",
    "家里断粮了，需要送米面油",
    "孩子网课没有设备",
)


@pytest.fixture(params=["verify", "notify"])
async def two_of_a_stage(
    request: pytest.FixtureRequest, kafka_bootstrap: str, mongodb_uri: str, gateway: FakeGateway
) -> AsyncIterator[tuple[ServiceSet, ServiceSet, str]]:
    """The four services, and a second process of one stage in the same groups and database."""
    stage = str(request.param)
    services = await sms_services(kafka_bootstrap, mongodb_uri, gateway)
    twin = ServiceSet(
        kafka_bootstrap,
        mongodb_uri,
        services.log_dir / "twin",
        prefix=services.prefix,
        database=services.database,
        extra_env={**services.extra_env, "INSTANCE_ID": f"{stage}-2"},
    )
    services.start()
    twin.start(stage)
    try:
        yield services, twin, stage
    finally:
        twin.stop()
        services.stop()


def records_received(service_set: ServiceSet, stage: str) -> float:
    """What one process of the stage consumed so far (its own metrics)."""
    text = httpx.get(f"{service_set.url(stage)}/metrics", timeout=5).text
    pattern = rf'^cityhelp_messages_received_total\{{service="{stage}",[^}}]*\}} ([0-9.e+]+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.M))


async def test_a_replica_killed_and_restarted_under_load_loses_and_repeats_nothing(
    two_of_a_stage: tuple[ServiceSet, ServiceSet, str],
    kafka_bootstrap: str,
    gateway: FakeGateway,
) -> None:
    services, twin, stage = two_of_a_stage
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        for i in range(TOTAL):
            body: dict[str, Any] = {
                **EXAMPLE,
                "description": f"第{i}户：{NEEDS[i % len(NEEDS)]}",
                "contact": {"name": "居民", "phone": f"137 {i // 10000:04d} {i % 10000:04d}"},
            }
            response = await http.post("/v1/requests", json=body)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["request_id"])
            if i == TOTAL // 3:
                twin.kill(stage)  # its partitions go to the other process
            if i == TOTAL // 2:
                twin.start(stage)  # and some come back
            await asyncio.sleep(0.01)

    wanted = set(accepted)

    async def all_dispatched() -> list[Any] | None:
        dispatched: list[Any] = []
        for topic in DISPATCH_TOPICS:
            dispatched += await read_topic(
                kafka_bootstrap, services.prefix + topic.value, until=lambda rs: False, timeout=1.0
            )
        return dispatched if wanted <= {r.key.decode() for r in dispatched} else None

    dispatched = await wait_until(all_dispatched, timeout=180, every=2)
    legs = Counter(json.loads(r.value)["leg_id"] for r in dispatched if r.key.decode() in wanted)
    assert {leg: n for leg, n in legs.items() if n > 1} == {}, "legs dispatched more than once"

    # One receipt per request reached the citizen: the gateway holds each key once. A notify
    # process killed between a send and its record sends the same key again on the other
    # process, which the gateway drops; a killed verify makes notify send nothing twice.
    expected = {notification_id(rid, "received", "sms", "") for rid in wanted}

    async def every_receipt() -> dict[str, Any] | None:
        snapshot = gateway.snapshot()
        sent = {m["idempotency_key"] for m in snapshot["messages"]}
        return snapshot if expected <= sent else None

    snapshot = await wait_until(every_receipt, timeout=180, every=2)
    # The gateway keeps one message per key, so a second SMS to a citizen can only be one sent
    # under another key: every message about these requests carries a key notify derives from
    # its request, event and leg.
    ours = {
        json.loads(r.value)["leg_id"]: r.key.decode()
        for r in dispatched
        if r.key.decode() in wanted
    }
    derived = {
        notification_id(rid, e, "sms", "") for rid in wanted for e in ("received", "verified")
    }
    derived |= {notification_id(rid, "dispatched", "sms", leg) for leg, rid in ours.items()}
    about_ours = [m for m in snapshot["messages"] if any(rid in m["text"] for rid in wanted)]
    assert len(about_ours) >= len(expected)
    strangers = {m["idempotency_key"] for m in about_ours} - derived
    assert strangers == set(), f"messages sent under keys of their own: {sorted(strangers)[:5]}"
    dropped = {k: n for k, n in snapshot["duplicate_keys"].items() if k in expected}
    if stage == "verify":
        assert dropped == {}, f"resends the gateway had to drop: {dropped}"

    # Both processes did part of the work: the partitions moved between them.
    assert records_received(services, stage) > 0
    assert records_received(twin, stage) > 0
