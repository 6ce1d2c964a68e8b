"""The closed loop on the real broker and database: departments are plain Kafka consumers and
producers. A request from intake reaches its teams, they acknowledge and resolve it on
help.status and intake shows it resolved; a rejected leg is re-routed and a second rejection
lands with the command centre; a leg past its deadline is escalated exactly once, also when
route restarts in between."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.topics import Topic
from tests.conftest import make_services
from tests.support.journey import (
    FOOD_AND_INSULIN,
    Records,
    everything_about,
    jobs,
    report,
    shown_as,
    submit,
    values_for,
    verified_request,
)
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.metrics import samples
from tests.support.services import ServiceSet, service_levels_file

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def loop(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """Intake, verify and route (notify is not needed here)."""
    services = await make_services(kafka_bootstrap, mongodb_uri, ROUTE_SLA_SCAN_SECONDS="1")
    with services.running("intake", "verify", "route"):
        yield services


def reasons(records: Records, request_id: str) -> list[str]:
    """The reason codes of a request's escalation records (jobs or lifecycle events)."""
    return [str(value.get("reason")).split(":")[0] for value in values_for(records, request_id)]


async def test_two_departments_acknowledge_and_resolve(
    loop: ServiceSet, kafka_bootstrap: str
) -> None:
    request_id = (await submit(loop, FOOD_AND_INSULIN))["request_id"]
    [community] = await jobs(loop, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 1)
    [medical] = await jobs(loop, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id, 1)
    assert community["rule_id"] == "default:food_supply"
    assert medical["rule_id"] == "food-medicine-also-medical"
    assert community["team_id"].startswith("community-jinshui")
    assert medical["contact"]["phone"] == "+8613800138000"

    # The departments report the moment they see their jobs, as a real system would.
    await report(loop, kafka_bootstrap, community, "acknowledged")
    await report(loop, kafka_bootstrap, medical, "resolved", echo_leg=False)
    await report(loop, kafka_bootstrap, community, "resolved")

    view = await shown_as(loop, request_id, "resolved")
    assert view["departments"] == ["community", "medical"]
    steps = [entry["status"] for entry in view["timeline"]]
    assert steps.index("acknowledged") < steps.index("resolved")

    records = await read_topic(
        kafka_bootstrap,
        loop.prefix + Topic.LIFECYCLE.value,
        timeout=10.0,
        until=lambda rs: any(e["status"] == "resolved" for e in values_for(rs, request_id)),
    )
    [done] = [e for e in values_for(records, request_id) if e["status"] == "resolved"]
    assert (done["actor"], done["category"], done["language"]) == ("route", "food_supply", "zh")
    assert done["contact"]["phone"] == "+8613800138000"


async def test_rejected_leg_is_rerouted_then_owned_by_the_command_centre(
    loop: ServiceSet, kafka_bootstrap: str
) -> None:
    education = {**FOOD_AND_INSULIN, "category": "education", "description": "孩子上网课没有电脑"}
    request_id = (await submit(loop, education))["request_id"]
    [first] = await jobs(loop, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 1)
    await report(loop, kafka_bootstrap, first, "rejected", note="不归我们管")
    second = (await jobs(loop, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id, 2))[1]
    assert second["team_id"] != first["team_id"]
    assert second["attempt"] == 2

    await report(loop, kafka_bootstrap, second, "rejected", echo_leg=False, note="人手不够")
    [command] = await jobs(loop, kafka_bootstrap, Topic.DISPATCH_COMMAND, request_id, 1)
    assert command["attempt"] == 3
    assert command["reason"].startswith("rejected_twice")
    community = await everything_about(loop, kafka_bootstrap, Topic.DISPATCH_COMMUNITY, request_id)
    assert len(community) == 2, "no third community dispatch: no ping-pong"


async def test_missed_deadlines_escalate_once_across_a_restart(
    kafka_bootstrap: str,
    mongodb_uri: str,
    mongo: AsyncMongoClient[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    levels = service_levels_file(
        tmp_path_factory.mktemp("levels") / "service_levels.toml",
        acknowledge_minutes=0.02,
        resolve_seconds=15,
    )
    services = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        ROUTE_SERVICE_LEVELS_FILE=str(levels),
        ROUTE_SLA_SCAN_SECONDS="0.3",
    )
    services.start("route")
    try:
        request_id = f"r-{uuid.uuid4().hex[:12]}"
        verified = verified_request(request_id, phone="+8613800138000", priority="P2")
        await produce(
            kafka_bootstrap,
            services.prefix + Topic.VERIFIED.value,
            json.dumps(verified, ensure_ascii=False).encode(),
            key=request_id.encode(),
        )
        [job] = await jobs(services, kafka_bootstrap, Topic.DISPATCH_MEDICAL, request_id, 1)
        legs = mongo[services.database]["legs"]

        async def acknowledge_breach_stored() -> bool:
            leg = await legs.find_one({"_id": job["leg_id"]})
            return leg is not None and "acknowledge" in leg.get("breached", [])

        await wait_until(acknowledge_breach_stored, timeout=30)
        # Restart between the two deadlines: the resolve timer must survive, the acknowledge
        # breach must not be escalated again.
        services.kill("route")
        services.start("route")
        command = services.prefix + Topic.DISPATCH_COMMAND.value
        records = await read_topic(
            kafka_bootstrap,
            command,
            timeout=40.0,
            until=lambda rs: "sla_resolve" in reasons(rs, request_id),
        )
        assert sorted(reasons(records, request_id)) == ["sla_acknowledge", "sla_resolve"]
        lifecycle = await read_topic(
            kafka_bootstrap,
            services.prefix + Topic.LIFECYCLE.value,
            timeout=10.0,
            until=lambda rs: "sla_resolve" in reasons(rs, request_id),
        )
        assert sorted(reasons(lifecycle, request_id)) == ["sla_acknowledge", "sla_resolve"]

        async def breaches() -> dict[tuple[str, str, str], float]:
            return {
                (sample.labels["kind"], sample.labels["department"], sample.labels["priority"]): (
                    sample.value
                )
                for sample in await samples(services, "route", "cityhelp_sla_breaches_total")
            }

        # The breach is counted right after its flag is stored.
        counted = await wait_until(breaches, timeout=10)
        # The restarted route escalated the resolve breach only.
        assert counted == {("resolve", "medical", "P2"): 1.0}
    finally:
        services.stop()
