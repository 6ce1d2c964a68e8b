"""P1 requests submitted through intake's HTTP API behind a backlog of P3 ones produced straight
onto the submitted topic, on a service set of its own; and the producer that queues records."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaProducer

from shared.topics import Topic
from tests.bench import bodies
from tests.bench.steps import Bench, drain
from tests.bench.watch import Outcomes, Watch, outcomes


@dataclass
class BacklogResult:
    backlog: int
    produce_s: float
    p1_sent: int
    p1: Outcomes
    p3: Outcomes
    waited_s: float
    p1_dispatch_ms: list[float]
    # Of each P1 dispatched: submit → verified on its topic, verified → its first job.
    p1_verify_ms: list[float] = field(default_factory=list)
    p1_route_ms: list[float] = field(default_factory=list)


async def produce_all(
    bootstrap: str, records: Iterable[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
) -> int:
    """Every ``(topic, value, key, headers)`` record, as fast as the producer takes them
    (acks=all, idempotent); how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, value, key, headers in records:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            sent += 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def produce_backlog(bootstrap: str, topic: str, n: int, base: int) -> set[str]:
    """``n`` ordinary P3 submitted records straight onto ``topic`` (acks=all, idempotent)."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await produce_all(
        bootstrap,
        (
            (
                topic,
                bodies.submitted(rid, bodies.p3_body(base + i)).model_dump_json().encode(),
                rid.encode(),
                [],
            )
            for i, rid in enumerate(ids)
        ),
    )
    return set(ids)


async def submit_p1(url: str, n: int, spread_s: float, base: int) -> set[str]:
    """``n`` P1 requests through intake's HTTP API, spread evenly over ``spread_s`` seconds;
    the request ids of those accepted."""
    accepted: set[str] = set()

    async def one(http: httpx.AsyncClient, i: int) -> None:
        await asyncio.sleep(spread_s * i / max(1, n))
        headers = {
            "X-Client-Id": f"bench-p1-{i}",
            "X-Forwarded-For": f"10.255.{(i >> 8) & 255}.{i & 255}",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        for _ in range(3):
            try:
                response = await http.post(
                    "/v1/requests", json=bodies.p1_body(base + i), headers=headers
                )
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 202:
                accepted.add(str(response.json()["request_id"]))
            return

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(one(http, i) for i in range(n)))
    return accepted


async def backlog_step(
    bench: Bench, backlog: int, p1: int, bound: float, base: int
) -> BacklogResult:
    """P1 submit→dispatch while ``backlog`` P3 requests wait on the submitted topic."""
    services = await bench.start_services()
    watch = Watch(bench.bootstrap, services.prefix)
    await watch.start()
    try:
        bench.say(f"  producing {backlog} P3 records onto the submitted topic")
        started = time.monotonic()
        p3_ids = await produce_backlog(
            bench.bootstrap, services.prefix + Topic.SUBMITTED.value, backlog, base
        )
        produce_s = time.monotonic() - started
        bench.say(f"  produced in {produce_s:.1f}s; submitting {p1} P1 requests over 10 s")
        p1_ids = await submit_p1(services.url("intake"), p1, 10.0, base + backlog)
        bench.say(f"  {len(p1_ids)} P1 accepted; waiting for their dispatch (at most {bound:.0f}s)")
        waited, _ = await drain(bench, watch, bound, ids=p1_ids, notifications=False)
        end_ms = time.time() * 1000
        tracks = watch.seen.tracks
        p1_out = outcomes(tracks, p1_ids, end_ms)
        legs = [
            (t.submit_ms, t.verify_ms, t.dispatch_ms)
            for k in p1_ids
            if (t := tracks.get(k)) and t.submit_ms and t.verify_ms and t.dispatch_ms
        ]
        p3_out = outcomes(tracks, p3_ids, end_ms)
        return BacklogResult(
            backlog=backlog,
            produce_s=produce_s,
            p1_sent=p1,
            p1=p1_out,
            p3=p3_out,
            waited_s=waited,
            p1_dispatch_ms=[
                t.dispatch_ms - t.submit_ms
                for k in p1_ids
                if (t := tracks.get(k)) and t.dispatch_ms is not None and t.submit_ms is not None
            ],
            p1_verify_ms=[verified - submitted for submitted, verified, _ in legs],
            p1_route_ms=[dispatched - verified for _, verified, dispatched in legs],
        )
    finally:
        await watch.stop()
        await bench.stop_services(services)
