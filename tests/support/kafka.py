"""Plain Kafka clients for tests: read what is on a topic, publish raw records."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from shared.envelope import Envelope, derive_id, event_type
from shared.schemas import SubmittedRequest


def submitted_headers(submitted: SubmittedRequest) -> dict[str, str]:
    """The CloudEvents headers intake publishes a submitted request with."""
    return Envelope(
        id=derive_id("submitted", submitted.request_id),
        type=event_type("request.submitted"),
        source="cityhelp/intake",
        subject=submitted.request_id,
        time=submitted.submitted_at,
    ).headers()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from the beginning, until ``until(records)`` or the timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if until(records):
                break
    finally:
        await consumer.stop()
    return records


def values(records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.value is not None]


# A record to publish: key, value, headers.
Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


@asynccontextmanager
async def kafka_producer(bootstrap: str, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer as the services run theirs (acks=all, idempotent), with ``options``
    added (batching, record size); stopped on the way out."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def produce_many(bootstrap: str, topic: str, records: Iterable[Record]) -> None:
    """Records published all at once (batched, in flight together), each acknowledged by the
    broker before this returns."""
    async with kafka_producer(bootstrap, linger_ms=20) as producer:
        sent = [await producer.send(topic, v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*sent)


async def produce(
    bootstrap: str,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    await produce_many(bootstrap, topic, [(key, value, headers or [])])


async def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.2
) -> Any:
    """Poll an async or sync predicate until it returns something truthy; fail with a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)
