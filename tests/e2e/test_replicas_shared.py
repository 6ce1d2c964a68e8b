"""What several processes of one stage share through the database: two route processes
escalate each due deadline once; the per-client limit holds across two intake processes and
the per-citizen limit across two notify processes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.notify.domain import notification_id
from shared.kafka import effect_id
from shared.settings import CONFIG_DIR
from shared.topics import Topic
from tests.conftest import make_services, sms_services
from tests.support.journey import EXAMPLE, verified_request
from tests.support.kafka import produce, read_topic, wait_until
from tests.support.services import ServiceSet, service_levels_file
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

LEGS = 12


def twin_of(services: ServiceSet, name: str) -> ServiceSet:
    """A second process of a stage: the same topics, groups and database."""
    return ServiceSet(
        services.kafka_bootstrap,
        services.mongodb_uri,
        services.log_dir / "twin",
        prefix=services.prefix,
        database=services.database,
        extra_env={**services.extra_env, "INSTANCE_ID": name},
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Any:
    """A copy of a config file with some lines replaced."""

    def write(name: str, replacements: dict[str, str]) -> str:
        text = (CONFIG_DIR / name).read_text(encoding="utf-8")
        for old, new in replacements.items():
            assert old in text, old
            text = text.replace(old, new)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def verified(request_id: str, phone: str) -> bytes:
    request = verified_request(request_id, phone=phone, priority="P3")
    return json.dumps(request, ensure_ascii=False).encode()


async def test_two_route_processes_escalate_each_due_deadline_once(
    kafka_bootstrap: str, mongodb_uri: str, tmp_path: Path
) -> None:
    levels = service_levels_file(
        tmp_path / "service_levels.toml", acknowledge_minutes=0.02, resolve_seconds=6
    )
    services = await make_services(
        kafka_bootstrap,
        mongodb_uri,
        ROUTE_SERVICE_LEVELS_FILE=str(levels),
        ROUTE_SLA_SCAN_SECONDS="0.2",
    )
    twin = twin_of(services, "route-2")
    services.start("route")
    twin.start("route")
    try:
        ids = [f"r-{uuid.uuid4().hex[:12]}" for _ in range(LEGS)]
        for request_id in ids:
            await produce(
                kafka_bootstrap,
                services.prefix + Topic.VERIFIED.value,
                verified(request_id, "+8613800138000"),
                key=request_id.encode(),
            )
        jobs = await read_topic(
            kafka_bootstrap,
            services.prefix + Topic.DISPATCH_MEDICAL.value,
            until=lambda rs: len(rs) >= LEGS,
        )
        legs = {json.loads(r.value)["leg_id"] for r in jobs}
        assert len(legs) == LEGS
        wanted = {
            effect_id("escalated", leg, kind) for leg in legs for kind in ("acknowledge", "resolve")
        }

        def escalations(records: list[Any]) -> list[str]:
            return [
                json.loads(r.value)["event_id"]
                for r in records
                if json.loads(r.value).get("status") == "escalated"
            ]

        lifecycle = services.prefix + Topic.LIFECYCLE.value
        await read_topic(
            kafka_bootstrap, lifecycle, timeout=90, until=lambda rs: wanted <= set(escalations(rs))
        )
        # Both processes keep scanning; a second escalation would come within a few scans.
        await asyncio.sleep(3)
        seen = Counter(
            escalations(
                await read_topic(kafka_bootstrap, lifecycle, until=lambda rs: False, timeout=3)
            )
        )
        assert set(seen) == wanted
        assert {e: n for e, n in seen.items() if n > 1} == {}, "escalated more than once"
        command = await read_topic(
            kafka_bootstrap,
            services.prefix + Topic.DISPATCH_COMMAND.value,
            until=lambda rs: False,
            timeout=3,
        )
        oversight = Counter(json.loads(r.value)["leg_id"] for r in command)
        assert len(oversight) == 2 * LEGS
        assert {leg: n for leg, n in oversight.items() if n > 1} == {}
    finally:
        twin.stop()
        services.stop()


async def test_the_client_limit_holds_across_two_intake_processes(
    kafka_bootstrap: str, mongodb_uri: str, config_file: Any
) -> None:
    # Six per client in a window of ten hours, no grace, one admission per slot: exact.
    rules = config_file(
        "intake.toml",
        {
            "client_capacity = 600": "client_capacity = 6",
            "client_per_minute = 6000.0": "client_per_minute = 0.01",
            "client_chunk = 10": "client_chunk = 1",
            "client_grace = 5": "client_grace = 0",
        },
    )
    services = await make_services(kafka_bootstrap, mongodb_uri, INTAKE_RULES_FILE=rules)
    twin = twin_of(services, "intake-2")
    services.start("intake")
    twin.start("intake")
    try:
        statuses: list[int] = []
        for i in range(10):
            target = (services if i % 2 else twin).url("intake")
            body = {**EXAMPLE, "contact": {"name": "居民", "phone": f"137 0000 {i:04d}"}}
            # What a client sets itself names nobody: neither header is from a trusted proxy.
            headers = {"X-Client-Id": f"client-{i}", "X-Forwarded-For": f"203.0.113.{i}"}
            async with httpx.AsyncClient(timeout=30) as http:
                response = await http.post(f"{target}/v1/requests", json=body, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) > 0
        assert Counter(statuses) == {202: 6, 429: 4}
        assert statuses[:6] == [202] * 6
    finally:
        twin.stop()
        services.stop()


async def test_the_citizen_limit_holds_across_two_notify_processes(
    kafka_bootstrap: str, mongodb_uri: str, config_file: Any, gateway: FakeGateway
) -> None:
    rules = config_file(
        "notify.toml",
        {"max_messages = 8\nwindow_seconds = 3600": "max_messages = 4\nwindow_seconds = 36000"},
    )
    services = await sms_services(kafka_bootstrap, mongodb_uri, gateway, NOTIFY_RULES_FILE=rules)
    twin = twin_of(services, "notify-2")
    services.start("notify")
    twin.start("notify")
    try:
        phone = f"+86137{uuid.uuid4().int % 10**8:08d}"
        ids = [f"r-{uuid.uuid4().hex[:12]}" for _ in range(10)]
        for request_id in ids:
            await produce(
                kafka_bootstrap,
                services.prefix + Topic.VERIFIED.value,
                verified(request_id, phone),
                key=request_id.encode(),
            )
        expected = {notification_id(rid, "verified", "sms", "") for rid in ids}
        notifications = services.database

        async def all_decided() -> list[dict[str, Any]] | None:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
            try:
                docs = [
                    d
                    async for d in client[notifications]["notifications"].find(
                        {"request_id": {"$in": ids}}, {"status": 1}
                    )
                ]
            finally:
                await client.close()
            return docs if len(docs) == len(ids) else None

        docs = await wait_until(all_decided, timeout=90, every=1)
        assert Counter(d["status"] for d in docs) == {"sent": 4, "suppressed": 6}
        sent = [m for m in gateway.snapshot()["messages"] if m["idempotency_key"] in expected]
        assert len(sent) == 4
    finally:
        twin.stop()
        services.stop()
