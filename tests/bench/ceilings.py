"""The physical limits the pipeline is compared with, measured on the same stack in the same run:
Kafka's own ProducerPerformance and ConsumerPerformance (the cached jars of
deploy/local/stack.sh) at the pipeline's record size and partition count, and the database's
batched-insert rate with PyMongo's async client."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

from tests.bench.stats import (
    ProducerPerf,
    parse_consumer_performance,
    parse_producer_performance,
)


@dataclass
class KafkaCeiling:
    record_size: int
    partitions: int
    producer: ProducerPerf | None = None
    consumer: dict[str, str] | None = None
    producer_cpu_s: float = 0.0
    consumer_cpu_s: float = 0.0
    tools_rss_mb: float = 0.0
    error: str = ""

    @property
    def produce_per_s(self) -> float | None:
        return self.producer.per_s if self.producer else None

    @property
    def consume_per_s(self) -> float | None:
        """Records per second while fetching (the consumer group's join time left out)."""
        if not self.consumer:
            return None
        value = self.consumer.get("fetch.nMsg.sec") or self.consumer.get("nMsg.sec")
        return float(value) if value else None


def kafka_libs() -> str | None:
    cache = os.path.expanduser(os.environ.get("CITYHELP_CACHE", "~/.cache/cityhelp"))
    found = sorted(glob.glob(f"{cache}/kafka-*/libs"), key=os.path.getmtime)
    return found[-1] if found else None


def _java(libs: str, main: str, *args: str, timeout: float) -> tuple[str, float, float]:
    """Run one of Kafka's tool classes; its output, CPU seconds and peak RSS in MB (reaped with
    wait4). Killed after ``timeout`` seconds."""
    command = ["java", "-Xmx512m", "-cp", f"{libs}/*", main, *args]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        return text, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


async def kafka_ceiling(
    bootstrap: str, *, record_size: int, partitions: int, records: int
) -> KafkaCeiling:
    """ProducerPerformance (acks=all, idempotent, linger 5 ms) of ``records`` records of
    ``record_size`` bytes onto a new topic of ``partitions`` partitions, then
    ConsumerPerformance reading them back."""
    result = KafkaCeiling(record_size, partitions)
    libs = kafka_libs()
    if libs is None:
        result.error = "Kafka jars not found in the cache (deploy/local/stack.sh fetches them)"
        return result
    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(
        _java,
        libs,
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        str(partitions),
        timeout=60,
    )
    out, result.producer_cpu_s, rss = await asyncio.to_thread(
        _java,
        libs,
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--record-size",
        str(record_size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
        timeout=300,
    )
    result.tools_rss_mb = rss
    result.producer = parse_producer_performance(out)
    if result.producer is None:
        result.error = f"ProducerPerformance: {out.strip()[-200:]}"
        return result
    out, result.consumer_cpu_s, rss = await asyncio.to_thread(
        _java,
        libs,
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--messages",
        str(result.producer.records),
        "--timeout",
        "30000",
        timeout=300,
    )
    result.tools_rss_mb = max(result.tools_rss_mb, rss)
    result.consumer = parse_consumer_performance(out)
    if result.consumer is None:
        result.error = f"ConsumerPerformance: {out.strip()[-200:]}"
    return result


@dataclass
class DatabaseCeiling:
    documents: int
    seconds: float
    batch: int
    document_bytes: int
    error: str = ""

    @property
    def insert_per_s(self) -> float | None:
        return self.documents / self.seconds if self.seconds > 0 and self.documents else None


async def database_ceiling(
    uri: str, *, seconds: float = 10.0, batch: int = 100, document_bytes: int = 1000
) -> DatabaseCeiling:
    """Unordered ``insert_many`` of ``batch`` documents of about ``document_bytes`` bytes, one
    after another on one async client, for ``seconds``; the database is dropped after."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, timeoutMS=60_000)
    name = f"bench_ceiling_{uuid.uuid4().hex[:8]}"
    collection = client[name]["documents"]
    padding = "x" * max(0, document_bytes - 120)
    inserted = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            docs = [
                {
                    "_id": f"{inserted + i:012d}-{uuid.uuid4().hex}",
                    "n": inserted + i,
                    "status": "submitted",
                    "at": time.time(),
                    "padding": padding,
                }
                for i in range(batch)
            ]
            await collection.insert_many(docs, ordered=False)
            inserted += batch
        elapsed = time.perf_counter() - started
        return DatabaseCeiling(inserted, elapsed, batch, document_bytes)
    except Exception as exc:
        return DatabaseCeiling(
            inserted, time.perf_counter() - started, batch, document_bytes, str(exc)
        )
    finally:
        try:
            await client.drop_database(name)
        finally:
            await client.close()
