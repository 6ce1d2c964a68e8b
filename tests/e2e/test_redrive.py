"""Re-drive: a department's report that came before route knew the request is dead-lettered;
once the request is dispatched, ``python -m tools.redrive --service route`` sends the report
back to help.status and route applies it — once, whatever the number of runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.intake import domain as intake_domain
from shared import requests_store
from shared.schemas import StatusEvent
from shared.topics import Topic
from tests.conftest import make_services
from tests.support.delivery import citizen, dispatches, headers, read_all
from tests.support.kafka import produce, wait_until
from tests.support.services import REPO, ServiceSet
from tools.redrive import REDRIVEN_FROM

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def route_services(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    services = await make_services(kafka_bootstrap, mongodb_uri)
    with services.running("intake", "verify", "route"):
        yield services


def redrive(services: ServiceSet, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tools.redrive", "--service", "route", *args],
        cwd=REPO,
        env={**os.environ, **services.env("route")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


async def test_a_report_dead_lettered_before_its_request_is_applied_after_redrive(
    route_services: ServiceSet, kafka_bootstrap: str, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    services = route_services
    db = mongo[services.database]
    status_topic = services.prefix + Topic.STATUS.value
    dlq = services.prefix + Topic.DLQ_ROUTE.value
    key = "redrive-1"
    request_id = intake_domain.request_id_for(client="web:anonymous", idempotency_key=key)

    # A record route can never read (dead-lettered for another reason), then the early report.
    await produce(kafka_bootstrap, status_topic, b"{not json", key=request_id.encode())
    early = StatusEvent(
        event_id="medical-early-ack",
        request_id=request_id,
        department="medical",
        status="acknowledged",
        actor="medical-jinshui-1",
        occurred_at=datetime.now(UTC),
    )
    await produce(
        kafka_bootstrap,
        status_topic,
        early.model_dump_json().encode(),
        key=request_id.encode(),
        headers=[("ce_id", b"medical-early-ack"), ("x-department-system", b"his-7")],
    )

    async def dead_letters() -> list[Any] | None:
        records = await read_all(kafka_bootstrap, [dlq])
        return records if len(records) == 2 else None

    letters = await wait_until(dead_letters, timeout=60, every=1)
    reasons = sorted(headers(r)["dlq_reason"] for r in letters)
    assert reasons == ["invalid_json", "unknown_leg"]

    # Now the request arrives and is dispatched; the report still sits in the dead letters.
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        response = await http.post(
            "/v1/requests", json=citizen("redrive", 300, 1), headers={"Idempotency-Key": key}
        )
    assert response.status_code == 202, response.text
    assert response.json()["request_id"] == request_id

    async def leg() -> dict[str, Any] | None:
        records = [
            r for r in await dispatches(services, kafka_bootstrap) if r.key == request_id.encode()
        ]
        return json.loads(records[0].value) if records else None

    job = await wait_until(leg, timeout=90, every=1)
    assert job["department"] == "medical"

    # A dry run publishes nothing and remembers nothing.
    dry = redrive(services, "--reason", "unknown_leg", "--dry-run")
    assert "would re-drive 1 record(s) (unknown_leg=1)" in summary(dry), dry
    assert len(await read_all(kafka_bootstrap, [status_topic])) == 2

    done = redrive(services, "--reason", "unknown_leg")
    assert "re-drove 1 record(s) (unknown_leg=1); passed over 1 with another reason" in summary(
        done
    ), done

    copies = [
        r for r in await read_all(kafka_bootstrap, [status_topic]) if REDRIVEN_FROM in headers(r)
    ]
    assert len(copies) == 1
    copy = copies[0]
    assert copy.key == request_id.encode()
    assert json.loads(copy.value)["event_id"] == "medical-early-ack"
    copied = headers(copy)
    assert copied["ce_id"] == "medical-early-ack"
    assert copied["x-department-system"] == "his-7"
    assert not [name for name in copied if name.startswith("dlq_")]
    assert copied[REDRIVEN_FROM].startswith(f"{dlq}:")

    async def acknowledged() -> dict[str, Any] | None:
        doc = await db["legs"].find_one({"_id": job["leg_id"]})
        return doc if doc and doc.get("progress") == "acknowledged" else None

    applied = await wait_until(acknowledged, timeout=60, every=0.5)
    assert applied["applied_events"] == ["medical-early-ack"]

    async def on_timeline() -> bool:
        doc = await requests_store.get_request(db, request_id) or {}
        return "acknowledged" in [t["status"] for t in doc.get("timeline", [])]

    await wait_until(on_timeline, timeout=60, every=0.5)

    # Each dead letter is re-driven once: a second run finds nothing left for its group.
    again = redrive(services, "--reason", "unknown_leg")
    assert "re-drove 0 record(s)" in summary(again), again
