"""Verify alone, draining a backlog: ``python -m tests.bench.verify_stage [--requests N]``.

Starts one verify process against the stack in ``KAFKA_BOOTSTRAP`` and ``MONGODB_URI`` (a fresh
topic prefix and database), writes N submission records into ``requests`` as intake's batch
writer does (unless ``--without-records``: every intake write lost), publishes the N requests
on ``help.requests.submitted`` and ``.priority`` as intake publishes them (the bodies of
``tests/bench/bodies.py``: one in ten a P1 labour request on the priority lane, the others
ordinary P3 needs) and waits until verify has finished every record. Then it prints the
records drained per second, verify's CPU seconds per request and the database's (utime + stime
from /proc; the database's needs ``CITYHELP_RUN_DIR``), its database writes per request
(inserted documents plus other write commands, as ``make bench`` counts them), and its write
commands and inserted documents per collection and request. Prints figures and asserts
nothing; the last line holds them all.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from services.intake.repository import submission_document
from shared import requests_store
from shared.envelope import Envelope, derive_id, event_type
from shared.kafka import effect_id
from shared.schemas import SubmittedRequest
from shared.topics import Topic
from tests.bench.bodies import p1_body, p3_body, submitted
from tests.bench.stage_run import Drained, Record, drain
from tests.support.services import REPO, ServiceSet

# One request in P1_EVERY is a P1 labour request (green channel, the priority lanes).
P1_EVERY = 10
# Intake's batch writer inserts at most 99 records a command.
RECORDS_PER_INSERT = 99


def say(text: str) -> None:
    print(f"[verify-stage] {text}", flush=True)


def submissions(requests: int, *, seed: str) -> list[tuple[Topic, SubmittedRequest]]:
    """The N submissions with the lane intake would publish each on (the P1 ones urgent)."""
    out: list[tuple[Topic, SubmittedRequest]] = []
    for i in range(requests):
        urgent = i % P1_EVERY == 0
        body = p1_body(i) if urgent else p3_body(i)
        value = submitted(derive_id("bench-verify", seed, str(i)), body)
        out.append((Topic.SUBMITTED_PRIORITY if urgent else Topic.SUBMITTED, value))
    return out


def bench_records(prefix: str, items: list[tuple[Topic, SubmittedRequest]]) -> Iterator[Record]:
    """Each submission as intake publishes it: keyed by the request id, the event's headers."""
    for topic, value in items:
        request_id = value.request_id
        envelope = Envelope(
            id=effect_id("submitted", request_id),
            type=event_type("request.submitted"),
            source="intake",
            subject=request_id,
            time=value.submitted_at,
        )
        yield (
            prefix + topic.value,
            value.model_dump_json().encode(),
            request_id.encode(),
            [(k, v.encode()) for k, v in envelope.headers().items()],
        )


async def write_records(
    uri: str, database: str, items: list[tuple[Topic, SubmittedRequest]]
) -> int:
    """The submission records as intake's batch writer inserts them (before the drain)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, timeoutMS=60_000)
    try:
        collection = client[database][requests_store.COLLECTION]
        documents = [
            requests_store.packed_record(
                submission_document(value, event_id=effect_id("submitted", value.request_id))
            )
            for _, value in items
        ]
        for start in range(0, len(documents), RECORDS_PER_INSERT):
            await collection.insert_many(
                documents[start : start + RECORDS_PER_INSERT], ordered=False
            )
        return len(documents)
    finally:
        await client.close()


def per_collection(drained: Drained, requests: int) -> dict[str, dict[str, float]]:
    """Write commands (``<command>:<collection>``) and inserted documents of each collection,
    per request."""
    table: dict[str, dict[str, float]] = {}
    for key, n in drained.writes.items():
        command, _, collection = key.partition(":")
        table.setdefault(collection or "?", {})[command] = n / requests
    for collection, n in drained.inserted.items():
        if n:
            table.setdefault(collection, {})["documents"] = n / requests
    return dict(sorted(table.items()))


def collection_line(table: Mapping[str, Mapping[str, float]]) -> str:
    """``collection[command=n,...]`` per collection, the figures per request."""
    parts = []
    for collection, figures in table.items():
        inner = ",".join(f"{k}={v:.3f}" for k, v in sorted(figures.items()))
        parts.append(f"{collection}[{inner}]")
    return " ".join(parts)


async def run(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    services = ServiceSet(
        bootstrap, uri, REPO / ".run" / "bench-verify", extra_env={"LOG_LEVEL": "WARNING"}
    )
    items = submissions(args.requests, seed=datetime.now(UTC).isoformat())
    try:
        say(f"starting verify (prefix {services.prefix}, database {services.database})")
        services.start("verify")
        say(f"verify pid {services.procs['verify'].pid}")
        if args.without_records:
            say("no submission records written: every intake write lost")
        else:
            written = await write_records(uri, services.database, items)
            say(f"{written} submission records written, as intake writes them")
        await asyncio.sleep(3)  # its consumers join their groups
        drained = await drain(
            services,
            "verify",
            bench_records(services.prefix, items),
            bootstrap=bootstrap,
            uri=uri,
            timeout=args.timeout,
            say=say,
            profile_path=args.profile,
        )
        table = per_collection(drained, args.requests)
        say(f"per request: {collection_line(table)}")
        records = "lost" if args.without_records else "written"
        print(f"verify_stage: intake_records={records}" + drained.figures(args.requests))
    finally:
        services.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.verify_stage", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000, help="requests (3000)")
    parser.add_argument(
        "--without-records", action="store_true", help="write no submission records first"
    )
    parser.add_argument("--profile", help="write a py-spy profile of verify here")
    parser.add_argument("--timeout", type=float, default=600.0, help="drain wait (600 s)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
