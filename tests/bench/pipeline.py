"""``make bench``: throughput of intake's HTTP accept path and of the whole pipeline, next to
the broker's own limit measured with Kafka's ProducerPerformance in the same run.

Prints figures and ratios; asserts nothing. Uses the stack in KAFKA_BOOTSTRAP / MONGODB_URI
(``make bench`` starts a fresh one) and its own topic prefix and database.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from shared.kafka import ensure_topics
from shared.schemas import HelpRequest, SubmittedRequest
from shared.settings import ServiceSettings
from shared.topics import Topic
from tests.support.services import ServiceSet

REPO = Path(__file__).resolve().parents[2]
DISTRICTS = ("jinshui", "erqi", "zhongyuan", "guancheng", "huiji", "zhengdong")
NEEDS = (
    ("food_supply", "家里断粮了，需要送米面油", "zh"),
    ("medical", "Need blood pressure medicine, two days left", "en"),
    ("transport", "Нужен пропуск для поездки на работу", "ru"),
    ("health_code", "健康码变黄了，需要核实", "zh"),
    ("education", "孩子网课没有设备", "zh"),
)


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def body(i: int) -> dict[str, Any]:
    category, text, language = NEEDS[i % len(NEEDS)]
    return {
        "category": category,
        "description": f"{text} ({i})",
        "contact": {"name": "居民", "phone": f"13{5 + i % 5}{i:08d}"[:11]},
        "location": {"district": DISTRICTS[i % len(DISTRICTS)]},
        "language": language,
    }


async def http_accept_rate(services: ServiceSet, n: int, concurrency: int) -> tuple[int, float]:
    sem = asyncio.Semaphore(concurrency)
    accepted = 0

    async def one(http: httpx.AsyncClient, i: int) -> None:
        nonlocal accepted
        async with sem:
            r = await http.post(
                "/v1/requests", json=body(i), headers={"X-Client-Id": f"bench{i % 997}"}
            )
            accepted += r.status_code == 202

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=services.url("intake"), timeout=30, limits=limits
    ) as http:
        started = time.perf_counter()
        await asyncio.gather(*(one(http, i) for i in range(n)))
        return accepted, time.perf_counter() - started


async def pipeline_drain(
    services: ServiceSet, bootstrap: str, uri: str, n: int
) -> dict[str, float]:
    """Put n submitted requests on the topic at once, then time how long the stages take."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    run = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    try:
        futures = []
        for i in range(n):
            rid = f"bench-{run}-{i}"
            value = SubmittedRequest(
                request_id=rid,
                submitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                channel="web",
                tracking_token_hash="x",
                request=HelpRequest.model_validate(body(100_000 + i)),
            )
            futures.append(
                await producer.send(
                    services.prefix + Topic.SUBMITTED.value,
                    value.model_dump_json().encode(),
                    key=rid.encode(),
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produced = time.perf_counter() - started
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[services.database]
    done = 0
    last = time.perf_counter()
    while done < n:
        await asyncio.sleep(2)
        done = await db["requests"].count_documents(
            {"_id": {"$regex": f"^bench-{run}-"}, "status": "dispatched"}
        )
        if time.perf_counter() - last > 10:
            say(f"  drained {done}/{n} to dispatch after {time.perf_counter() - started:.0f}s")
            last = time.perf_counter()
        if time.perf_counter() - started > 1800:
            break
    await client.close()
    total = time.perf_counter() - started
    return {"produced_s": produced, "drain_s": total, "dispatched": done, "per_s": done / total}


def producer_performance(bootstrap: str, records: int) -> str:
    libs = sorted(
        glob.glob(
            os.path.expanduser(os.environ.get("CITYHELP_CACHE", "~/.cache/cityhelp"))
            + "/kafka-*/libs"
        )
    )
    if not libs:
        return "Kafka jars not found (run `make infra` first)"
    topic = f"bench-perf-{uuid.uuid4().hex[:6]}"
    cmd = [
        "java",
        "-cp",
        f"{libs[-1]}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        "600",
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
    ]
    subprocess.run(
        [
            "java",
            "-cp",
            f"{libs[-1]}/*",
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "6",
        ],
        capture_output=True,
        check=False,
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    lines = [line for line in out.splitlines() if "records sent" in line]
    return lines[-1] if lines else out[-300:]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=3000, help="requests through intake HTTP")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--pipeline", type=int, default=5000, help="records put straight on the topic"
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    services = ServiceSet(
        bootstrap, uri, REPO / ".run" / "bench-logs", extra_env={"LOG_LEVEL": "WARNING"}
    )
    await ensure_topics(ServiceSettings(KAFKA_BOOTSTRAP=bootstrap, TOPIC_PREFIX=services.prefix))
    say(f"starting the four services (topic prefix {services.prefix})")
    services.start()
    try:
        say("broker limit: Kafka ProducerPerformance, 200000 records of 600 bytes, acks=all")
        perf = producer_performance(bootstrap, 200_000)
        say(f"  {perf}")
        say(f"intake HTTP: {args.http} POSTs with {args.concurrency} concurrent clients")
        accepted, seconds = await http_accept_rate(services, args.http, args.concurrency)
        say(f"  accepted {accepted} in {seconds:.1f}s = {accepted / seconds:.0f} requests/s")
        say(
            f"pipeline: {args.pipeline} submitted records at once, timing verify → route → dispatch"
        )
        figures = await pipeline_drain(services, bootstrap, uri, args.pipeline)
        say(
            f"  produced in {figures['produced_s']:.1f}s; {figures['dispatched']:.0f} dispatched "
            f"in {figures['drain_s']:.1f}s = {figures['per_s']:.0f} requests/s end to end"
        )
        match = re.search(r"([\d.]+) records/sec", perf)
        if match:
            ratio = figures["per_s"] / float(match.group(1))
            say(f"ratio pipeline/broker producer limit: {ratio:.4f}")
        say(f"ratio pipeline/seed peak (556 req/s): {figures['per_s'] / 556:.2f}")
    finally:
        services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
