"""A service dies at a named point between two of its effects (``shared/faults.py``, exit 137
like SIGKILL), is restarted without the point, and the redelivery finishes the work without
repeating an effect: every accepted request is dispatched and acknowledged, each leg goes out
once, the citizen gets one SMS per event, and no timeline entry is written twice.
``docs/delivery.md`` explains each window.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from shared import faults, requests_store
from shared.schemas import StatusEvent
from shared.topics import Topic
from tests.support.delivery import (
    citizen,
    dispatch_ledger,
    dispatches,
    timeline_repeats,
)
from tests.support.kafka import wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

N = 4  # requests per crash point: the point fires on an early hit, the rest follow it

# (victim, point, hit): the victim dies the hit-th time it reaches the point.
POINTS = [
    ("intake", "intake.after_publish", 2),
    # Verify applies a batch: its writes, then its events, then the commit (shared/batch.py).
    ("verify", "verify.after_batch_guards", 2),
    ("verify", "verify.after_batch_writes", 2),
    ("verify", "verify.after_batch_publish", 2),
    ("verify", "verify.before_commit", 2),
    # Route dispatches a batch the same way; a department's report is handled record by record.
    ("route", "route.after_batch_guards", 2),
    ("route", "route.after_batch_writes", 2),
    ("route", "route.after_batch_publish", 2),
    ("route", "route.before_commit", 2),
    ("route", "route.after_status_applied", 2),
    # Notify claims a batch's messages, sends them, stores their outcomes, then commits.
    ("notify", "notify.after_batch_guards", 3),
    ("notify", "notify.after_send", 3),
    ("notify", "notify.after_batch_writes", 3),
    ("notify", "notify.before_commit", 3),
]


class Victim:
    """One service of the set, restarted with a crash point armed, and again without it once
    it died."""

    def __init__(self, services: ServiceSet, name: str, point: str) -> None:
        self.services = services
        self.name = name
        self.point = point
        self.exits: list[int] = []

    def arm(self) -> None:
        assert self.services.terminate(self.name) == 0, "a graceful stop exits 0"
        self.services.extra_env["CITYHELP_CRASH_POINTS"] = self.point
        try:
            self.services.start(self.name)
        finally:
            del self.services.extra_env["CITYHELP_CRASH_POINTS"]

    def supervise(self) -> None:
        """Restart the victim (unarmed) if it has died."""
        code = self.services.procs[self.name].poll()
        if code is not None:
            self.exits.append(code)
            self.services.start(self.name)


async def submit(
    services: ServiceSet, victim: Victim, bodies: list[dict[str, Any]], tag: str
) -> list[str]:
    """Submit each body until it is accepted; a request whose answer was lost (intake died)
    is retried with the same Idempotency-Key, as a client would."""
    accepted: list[str] = []
    for i, body in enumerate(bodies):

        async def attempt(body: dict[str, Any] = body, i: int = i) -> str | None:
            victim.supervise()
            try:
                async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
                    response = await http.post(
                        "/v1/requests", json=body, headers={"Idempotency-Key": f"{tag}-{i}"}
                    )
            except httpx.TransportError:
                return None
            assert response.status_code == 202, response.text
            return str(response.json()["request_id"])

        accepted.append(await wait_until(attempt, timeout=90, every=0.5))
    return accepted


async def report_acknowledged(
    bootstrap: str, services: ServiceSet, jobs: list[dict[str, Any]]
) -> None:
    """Each leg's team acknowledges it on help.status (a plain producer, like a department)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for job in jobs:
            event = StatusEvent(
                event_id=f"ack-{job['leg_id']}",
                request_id=job["request_id"],
                department=job["department"],
                status="acknowledged",
                leg_id=job["leg_id"],
                actor=job["team_id"],
                occurred_at=datetime.now(UTC),
            )
            await producer.send_and_wait(
                services.prefix + Topic.STATUS.value,
                event.model_dump_json().encode(),
                key=job["request_id"].encode(),
            )
    finally:
        await producer.stop()


# Route's points after which the crashed batch's jobs are on their topics already.
JOBS_OUT_BEFORE_CRASH = ("route.after_batch_publish", "route.before_commit")


def _found_on_topic(services: ServiceSet) -> int:
    """How often route's log says a leg was found on its dispatch topic after a crash."""
    log = services.log_dir / f"{services.prefix}route.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count("leg found on its dispatch topic; not published again")


def statuses(doc: dict[str, Any] | None) -> list[str]:
    return [entry["status"] for entry in (doc or {}).get("timeline", [])]


@pytest.mark.parametrize(("victim_name", "point", "hit"), POINTS, ids=[p for _, p, _ in POINTS])
async def test_crash_at_point_then_restart_repeats_no_effect(
    sms_pipeline: ServiceSet,
    gateway: FakeGateway,
    kafka_bootstrap: str,
    mongo: AsyncMongoClient[dict[str, Any]],
    victim_name: str,
    point: str,
    hit: int,
) -> None:
    services = sms_pipeline
    db = mongo[services.database]
    group = 100 + [p for _, p, _ in POINTS].index(point)
    tag = point.replace(".", "-")
    victim = Victim(services, victim_name, f"{point}:{hit}")
    found_before = _found_on_topic(services)
    victim.arm()

    accepted = await submit(services, victim, [citizen(tag, group, i) for i in range(N)], tag)
    assert len(set(accepted)) == N

    async def all_reached(status: str) -> bool:
        victim.supervise()
        docs = [await requests_store.get_request(db, rid) for rid in accepted]
        return all(status in statuses(doc) for doc in docs)

    await wait_until(lambda: all_reached("dispatched"), timeout=120, every=0.5)

    async def every_job_out() -> dict[str, dict[str, Any]] | None:
        # A department acknowledges the jobs it sees. After a crash, route's careful path
        # records a leg (and "dispatched") before its job goes out, so the job may follow the
        # status by a moment.
        victim.supervise()
        found = {
            json.loads(r.value)["leg_id"]: json.loads(r.value)
            for r in await dispatches(services, kafka_bootstrap)
            if r.key is not None and r.key.decode() in accepted
        }
        return found if {j["request_id"] for j in found.values()} == set(accepted) else None

    jobs = await wait_until(every_job_out, timeout=120, every=0.5)
    await report_acknowledged(kafka_bootstrap, services, list(jobs.values()))
    await wait_until(lambda: all_reached("acknowledged"), timeout=120, every=0.5)

    # received, verified and acknowledged once per request, dispatched once per leg
    expected_sms = 3 * N + len(jobs)

    async def notified() -> list[dict[str, Any]] | None:
        victim.supervise()
        docs = [d async for d in db["notifications"].find({"request_id": {"$in": accepted}})]
        done = len(docs) == expected_sms and all(d["status"] == "sent" for d in docs)
        return docs if done else None

    deliveries = await wait_until(notified, timeout=120, every=0.5)
    if point in JOBS_OUT_BEFORE_CRASH:
        # The jobs were out before the crash, and the request reads "dispatched" from its case:
        # all of the above can be true before the restarted route has handled the batch again.
        # Wait for that, so that a second publish would be in the ledger below.
        await wait_until(lambda: _found_on_topic(services) > found_before, timeout=120)

    # The point was reached and the process died there, once.
    assert victim.exits == [faults.EXIT_CODE], f"{victim_name} exits: {victim.exits}"

    ledger = await dispatch_ledger(services, kafka_bootstrap, accepted)
    assert ledger.lost == [], f"accepted but never dispatched: {ledger.lost}"
    assert ledger.legs == len(jobs) >= N
    assert ledger.repeats_with_other_ids == [], "a leg republished under another id or value"
    assert ledger.repeated_legs == {}, f"legs dispatched more than once: {ledger.repeated_legs}"
    if point == "route.after_batch_publish":
        # The legs that went out in the batch the crash cut short were found on their topics
        # instead of being published again (the ledger above shows each leg once).
        assert _found_on_topic(services) > found_before

    assert await timeline_repeats(mongo, services.database, accepted) == []
    for rid in accepted:
        doc = await requests_store.get_request(db, rid)
        counts = Counter(statuses(doc))
        assert counts["verified"] == 1, (rid, counts)
        assert counts["acknowledged"] == 1, (rid, counts)

    # One SMS per (request, event, channel): the gateway keeps one message per key, so the
    # messages about these requests must be exactly the deliveries notify recorded as sent, a
    # message under any other key being a second SMS to the citizen.
    snapshot = gateway.snapshot()
    ours = {d["_id"] for d in deliveries}
    about = [
        m["idempotency_key"]
        for m in snapshot["messages"]
        if any(rid in m["text"] for rid in accepted)
    ]
    assert sorted(about) == sorted(ours)
    resent = {k: n for k, n in snapshot["duplicate_keys"].items() if k in ours}
    if point == "notify.after_send":
        # The message the crash cut off was sent again under its key and dropped by the gateway;
        # so were any others of its batch, or of the other lane, sent before the process died:
        # each once, never more.
        assert resent, resent
        assert set(resent.values()) == {1}, resent
    elif point.startswith("notify."):
        # Notify's two lanes send concurrently: a crash in one lane's batch can cut the other
        # lane's sends short too, so those are sent again once under their keys, never more.
        assert set(resent.values()) <= {1}, resent
    else:
        assert resent == {}, f"resends the gateway had to drop: {resent}"
