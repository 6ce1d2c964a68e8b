"""Kafka access control on a broker secured like production: SASL/SCRAM, deny by default, and
the ACLs of deploy/local/kafka/sasl/acls.toml, applied by deploy/local/kafka-sasl.sh.

The module starts its own broker (its own ports and a temporary run dir; the shared test broker
is not touched) and stops it at the end. It shows that a department reads only its own dispatch
topic and writes only help.status, that a partner can only post, that route holds exactly the
rights route needs, that wrong or missing credentials get nowhere, and that route itself runs
against the secured broker with its own credentials: it dispatches a request, takes a
department's acknowledgement and measures its consumer lag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from services.route.published import PublishedEvents
from shared.lag import client_options
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.conftest import LOG_DIR
from tests.support.journey import verified_request
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "local" / "kafka-sasl.sh"
Records = list[ConsumerRecord[bytes, bytes]]


@dataclass(frozen=True)
class SecureKafka:
    """The secured broker and the passwords the script generated for its principals."""

    bootstrap: str
    secrets: Path

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        """The KAFKA_* variables a service or client sets to connect as ``user``."""
        return {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password
            if password is not None
            else (self.secrets / f"{user}.password").read_text().strip(),
        }

    def options(self, user: str, password: str | None = None) -> dict[str, Any]:
        """aiokafka options built by the project's own code from those variables."""
        return client_options(ServiceSettings(**self.env(user, password)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    run_dir = tmp_path_factory.mktemp("sasl-stack")
    port = os.environ.get("KAFKA_SASL_PORT") or str(free_port())
    cport = os.environ.get("KAFKA_SASL_CONTROLLER_PORT") or str(free_port())
    env = {
        **os.environ,
        "CITYHELP_RUN_DIR": str(run_dir),
        "KAFKA_SASL_PORT": port,
        "KAFKA_SASL_CONTROLLER_PORT": cport,
        "CITYHELP_FRESH": "1",
    }
    print(f"[acl-test] starting a SASL/ACL Kafka on 127.0.0.1:{port} in {run_dir}", file=sys.stderr)
    started = time.monotonic()
    result = subprocess.run([str(SCRIPT), "start"], env=env, cwd=REPO, timeout=600, check=False)
    try:
        assert result.returncode == 0, f"kafka-sasl.sh start failed; logs in {run_dir}/logs"
        print(
            f"[acl-test] secured broker ready in {time.monotonic() - started:.0f}s",
            file=sys.stderr,
        )
        yield SecureKafka(f"127.0.0.1:{port}", run_dir / "kafka-sasl" / "secrets")
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, cwd=REPO, timeout=120, check=False)


async def produce_as(
    kafka: SecureKafka, user: str, topic: str, value: dict[str, Any], *, key: str
) -> None:
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **kafka.options(user))
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(value).encode(), key=key.encode())
    finally:
        await producer.stop()


async def read_as(
    kafka: SecureKafka,
    user: str,
    topic: str,
    *,
    group: str | None,
    until: Callable[[Records], bool],
    timeout: float = 30.0,
) -> Records:
    """Records of ``topic`` read as ``user`` (in ``group``, committing), until ``until``."""
    consumer = AIOKafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka.options(user),
    )
    records: Records = []
    try:
        await consumer.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
        if group is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return records


def keyed(records: Records, key: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.key == key.encode() and r.value]


async def read_request(
    kafka: SecureKafka, user: str, topic: str, rid: str, *, group: str | None
) -> list[dict[str, Any]]:
    """The values keyed by request ``rid`` that ``user`` reads on ``topic``, once there are any."""
    records = await read_as(kafka, user, topic, group=group, until=lambda rs: bool(keyed(rs, rid)))
    return keyed(records, rid)


def job(request_id: str, department: str) -> dict[str, Any]:
    return {"request_id": request_id, "department": department, "note": "acl test"}


async def test_a_department_reads_only_its_own_dispatch_topic(secure_kafka: SecureKafka) -> None:
    rid = f"acl-{uuid.uuid4().hex[:8]}"
    # Route's principal publishes the jobs, as route does.
    await produce_as(
        secure_kafka, "svc-route", Topic.DISPATCH_MEDICAL, job(rid, "medical"), key=rid
    )
    await produce_as(secure_kafka, "svc-route", Topic.DISPATCH_POLICE, job(rid, "police"), key=rid)

    mine = await read_request(
        secure_kafka, "dept-medical", Topic.DISPATCH_MEDICAL, rid, group="dept-medical"
    )
    assert mine == [job(rid, "medical")]

    for topic in (Topic.DISPATCH_POLICE, Topic.SUBMITTED, Topic.STATUS):
        with pytest.raises(TopicAuthorizationFailedError):
            await read_as(
                secure_kafka, "dept-medical", topic, group="dept-medical", until=bool, timeout=5
            )
    # Its own topic, but in another department's consumer group: refused as well.
    with pytest.raises(GroupAuthorizationFailedError):
        await read_as(
            secure_kafka,
            "dept-medical",
            Topic.DISPATCH_MEDICAL,
            group="dept-police",
            until=bool,
            timeout=5,
        )


async def test_a_department_writes_only_help_status(secure_kafka: SecureKafka) -> None:
    rid = f"acl-{uuid.uuid4().hex[:8]}"
    report = {"request_id": rid, "department": "medical", "status": "acknowledged"}
    await produce_as(secure_kafka, "dept-medical", Topic.STATUS, report, key=rid)
    seen = await read_request(secure_kafka, "svc-route", Topic.STATUS, rid, group=None)
    assert seen == [report]

    for topic in (Topic.DISPATCH_MEDICAL, Topic.VERIFIED, Topic.LIFECYCLE):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce_as(secure_kafka, "dept-medical", topic, report, key=rid)


async def test_a_partner_only_posts_to_partner_inbound(secure_kafka: SecureKafka) -> None:
    rid = f"acl-{uuid.uuid4().hex[:8]}"
    value = {"partner_id": "hotline-12345", "external_id": rid, "category": "medical"}
    await produce_as(secure_kafka, "partner-hotline-12345", Topic.PARTNER_INBOUND, value, key=rid)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce_as(secure_kafka, "partner-hotline-12345", Topic.SUBMITTED, value, key=rid)
    with pytest.raises(TopicAuthorizationFailedError):
        await read_as(
            secure_kafka, "partner-hotline-12345", Topic.PARTNER_INBOUND, group=None, until=bool
        )


async def test_route_holds_only_what_route_needs(secure_kafka: SecureKafka) -> None:
    rid = f"acl-{uuid.uuid4().hex[:8]}"
    # Route publishes the reports its department boards make on help.status (as a department's
    # own system would), but may not forge a notification, a verification or a partner record.
    await produce_as(secure_kafka, "svc-route", Topic.STATUS, {"request_id": rid}, key=rid)
    for topic in (Topic.NOTIFICATIONS, Topic.VERIFIED, Topic.PARTNER_INBOUND):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce_as(secure_kafka, "svc-route", topic, {"request_id": rid}, key=rid)
    # Nor read what is not its input (personal data on submitted requests, partners' records).
    for topic in (Topic.SUBMITTED, Topic.PARTNER_INBOUND, Topic.NOTIFICATIONS):
        with pytest.raises(TopicAuthorizationFailedError):
            await read_as(secure_kafka, "svc-route", topic, group="cityhelp-route", until=bool)
    # Its own input, but in verify's consumer group: refused.
    with pytest.raises(GroupAuthorizationFailedError):
        await read_as(
            secure_kafka, "svc-route", Topic.VERIFIED, group="cityhelp-verify", until=bool
        )


async def test_wrong_or_missing_credentials_get_nowhere(secure_kafka: SecureKafka) -> None:
    with pytest.raises(KafkaConnectionError):  # SCRAM authentication fails
        await _start_consumer(secure_kafka.options("dept-medical", "not-the-password"))
    with pytest.raises(KafkaConnectionError):  # the listener speaks SASL only
        await _start_consumer({"bootstrap_servers": secure_kafka.bootstrap})


async def _start_consumer(options: dict[str, Any]) -> None:
    consumer = AIOKafkaConsumer(Topic.STATUS, group_id=None, **options)
    try:
        await consumer.start()
    finally:
        await consumer.stop()


@pytest.fixture
async def route_process(
    secure_kafka: SecureKafka, mongodb_uri: str
) -> AsyncIterator[tuple[ServiceSet, AsyncMongoClient[dict[str, Any]]]]:
    """Route as a process configured only by the environment: SASL as User:svc-route."""
    services = ServiceSet(
        secure_kafka.bootstrap,
        mongodb_uri,
        LOG_DIR,
        prefix="",  # ACLs name the contract's topics and groups, as in production
        database=f"test_acl_{uuid.uuid4().hex[:10]}",
        extra_env={**secure_kafka.env("svc-route"), "ROUTE_LAG_INTERVAL_SECONDS": "1"},
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    services.start("route")
    try:
        yield services, client
    finally:
        services.stop()
        await client.drop_database(services.database)
        await client.close()


async def test_route_runs_on_the_secured_broker_with_its_own_credentials(
    secure_kafka: SecureKafka,
    route_process: tuple[ServiceSet, AsyncMongoClient[dict[str, Any]]],
) -> None:
    services, client = route_process
    rid = f"acl-{uuid.uuid4().hex[:8]}"
    # The request record intake and verify keep (route only adds to it).
    await client[services.database]["requests"].insert_one(
        {"_id": rid, "status": "verified", "timeline": [], "applied_events": []}
    )
    await produce_as(
        secure_kafka,
        "svc-verify",
        Topic.VERIFIED,
        verified_request(rid, phone="+8613800138000", priority="P2"),
        key=rid,
    )

    # The medical team sees the job with its own credentials and group.
    jobs = await read_as(
        secure_kafka,
        "dept-medical",
        Topic.DISPATCH_MEDICAL,
        group="dept-medical",
        until=lambda rs: bool(keyed(rs, rid)),
        timeout=60,
    )
    assert [j["department"] for j in keyed(jobs, rid)] == ["medical"]
    # Route's look-up of its own dispatch topic (after a crash between publish and mark) works
    # with its credentials too: it finds the job by its CloudEvents id.
    ce_id = next(
        value.decode()
        for r in jobs
        if r.key == rid.encode()
        for name, value in r.headers
        if name == "ce_id"
    )
    lookup = PublishedEvents(ServiceSettings(**secure_kafka.env("svc-route")))  # type: ignore[arg-type]
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert await lookup.contains(Topic.DISPATCH_MEDICAL, ce_id=ce_id, since=since)

    # Its acknowledgement on help.status comes back from route as a lifecycle event.
    ack = {
        "event_id": uuid.uuid4().hex,
        "request_id": rid,
        "department": "medical",
        "status": "acknowledged",
        "actor": "medical-team-7",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    await produce_as(secure_kafka, "dept-medical", Topic.STATUS, ack, key=rid)
    events = await read_as(
        secure_kafka,
        "svc-notify",
        Topic.LIFECYCLE,
        group=None,
        until=lambda rs: any(e.get("status") == "acknowledged" for e in keyed(rs, rid)),
        timeout=60,
    )
    assert "acknowledged" in [e.get("status") for e in keyed(events, rid)]

    # Route's lag collector authenticated too: it measures its group on its input topic.
    async def lag_measured() -> bool:
        text = httpx.get(f"{services.url('route')}/metrics", timeout=5).text
        return any(
            s.labels.get("group") == "cityhelp-route"
            and s.labels.get("topic") == Topic.VERIFIED.value
            for family in text_string_to_metric_families(text)
            if family.name == "cityhelp_consumer_lag"
            for s in family.samples
        )

    await wait_until(lag_measured, timeout=30)
