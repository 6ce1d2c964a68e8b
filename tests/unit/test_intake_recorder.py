"""Intake's batch writer of submission records (on a fake collection) and its replay cache."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError, OperationFailure, ServerSelectionTimeoutError

from services.intake.receipts import ReplayCache
from services.intake.recorder import SubmissionWriter
from services.intake.repository import submission_document
from shared import requests_store
from shared.db import Document
from shared.metrics import registry
from shared.schemas import HelpRequest, SubmittedRequest

pytestmark = pytest.mark.unit


def outcome(name: str) -> float:
    value = registry().get_sample_value("cityhelp_intake_records_total", {"outcome": name})
    return value or 0.0


class FakeCollection:
    """insert_many(ordered=False) as MongoDB and FerretDB do it: a duplicate _id fails alone."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self.commands: list[int] = []  # documents per insert command
        self.failures: list[BaseException] = []  # raised by the next commands, in order
        self.stall = 0.0

    async def insert_many(
        self, documents: Sequence[Mapping[str, Any]], *, ordered: bool = True
    ) -> None:
        assert not ordered
        self.commands.append(len(documents))
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.failures:
            raise self.failures.pop(0)
        errors = []
        for index, doc in enumerate(documents):
            if doc["_id"] in self.docs:
                errors.append({"index": index, "code": 11000, "errmsg": "duplicate key"})
            else:
                self.docs[doc["_id"]] = dict(doc)
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(documents) - len(errors)})


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def doc(i: int) -> Document:
    return {"_id": f"r-{i}", "n": i}


def writer(collection: FakeCollection, **options: Any) -> SubmissionWriter:
    async def insert(documents: list[RawBSONDocument]) -> None:
        await collection.insert_many(documents, ordered=False)

    options.setdefault("sleep", no_sleep)
    return SubmissionWriter(insert, **options)


async def test_records_are_written_in_batches_below_100_statements() -> None:
    collection = FakeCollection()
    w = writer(collection, flush_seconds=0.01)
    task = asyncio.create_task(w.run())
    for i in range(250):
        assert w.add(doc(i))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(collection.docs) == 250:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(collection.docs) == 250
    assert max(collection.commands) == 99
    assert len(collection.commands) == 3


async def test_a_lone_record_waits_at_most_the_flush_interval() -> None:
    collection = FakeCollection()
    w = writer(collection, flush_seconds=0.02)
    task = asyncio.create_task(w.run())
    w.add(doc(1))
    await asyncio.sleep(0.005)
    assert collection.docs == {}
    await asyncio.sleep(0.1)
    assert list(collection.docs) == ["r-1"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_duplicate_id_means_the_record_exists_and_the_rest_is_written() -> None:
    collection = FakeCollection()
    collection.docs["r-2"] = {"_id": "r-2", "n": "created by verify"}
    w = writer(collection)
    existed, written = outcome("existed"), outcome("written")
    for i in range(4):
        w.add(doc(i))
    await w.flush()
    assert sorted(collection.docs) == ["r-0", "r-1", "r-2", "r-3"]
    assert collection.docs["r-2"]["n"] == "created by verify"  # never overwritten
    assert collection.commands == [4]  # no retry for a duplicate
    assert outcome("existed") - existed == 1
    assert outcome("written") - written == 3


async def test_the_database_away_is_retried_with_back_off_until_written() -> None:
    collection = FakeCollection()
    collection.failures = [ServerSelectionTimeoutError("away")] * 3
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    w = writer(collection, sleep=sleep, retry_initial_seconds=0.5, retry_max_seconds=1.5)
    w.add(doc(1))
    await w.flush()
    assert list(collection.docs) == ["r-1"]
    assert delays == [0.5, 1.0, 1.5]
    assert w.waiting == 0


async def test_every_database_call_has_a_timeout() -> None:
    collection = FakeCollection()
    collection.stall = 1.0
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        collection.stall = 0.0  # the database answers again

    w = writer(collection, sleep=sleep, timeout_seconds=0.05)
    w.add(doc(1))
    await asyncio.wait_for(w.flush(), timeout=2)
    assert list(collection.docs) == ["r-1"]
    assert len(delays) == 1


async def test_the_buffer_is_bounded_and_drops_are_counted() -> None:
    collection = FakeCollection()
    w = writer(collection, buffer_max=3)
    dropped = outcome("dropped_full")
    assert [w.add(doc(i)) for i in range(5)] == [True, True, True, False, False]
    assert outcome("dropped_full") - dropped == 2
    await w.flush()
    assert sorted(collection.docs) == ["r-0", "r-1", "r-2"]


async def test_records_the_server_keeps_refusing_are_given_up_and_counted() -> None:
    collection = FakeCollection()
    collection.failures = [OperationFailure("bad", code=2)] * 10
    w = writer(collection, rejected_attempts=3)
    rejected = outcome("dropped_rejected")
    w.add(doc(1))
    await w.flush()
    assert collection.commands == [1, 1, 1]
    assert outcome("dropped_rejected") - rejected == 1
    assert w.waiting == 0


async def test_stopping_writes_what_is_left() -> None:
    collection = FakeCollection()
    w = writer(collection, flush_seconds=10.0)
    task = asyncio.create_task(w.run())
    await asyncio.sleep(0)
    for i in range(5):
        w.add(doc(i))
    await asyncio.sleep(0.01)
    assert collection.docs == {}
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(collection.docs) == [f"r-{i}" for i in range(5)]


def a_submission() -> SubmittedRequest:
    return SubmittedRequest(
        request_id="req-1",
        submitted_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        channel="web",
        client_id="web:anonymous",
        tracking_token_hash="0" * 64,
        request=HelpRequest.model_validate(
            {
                "category": "medical",
                "description": "需要胰岛素",
                "contact": {"name": "王女士", "phone": "138 0013 8000"},
                "location": {"district": "jinshui", "lat": 34.77, "lon": 113.66},
                "language": "zh",
            }
        ),
    )


async def test_the_document_is_the_one_apply_transition_creates() -> None:
    """The batch writer's document equals the record the per-request write used to create."""
    submitted = a_submission()
    inserted: list[Document] = []

    class Collection:
        async def find_one(self, *args: Any, **kwargs: Any) -> None:
            return None

        async def insert_one(self, document: Document) -> None:
            inserted.append(document)

    class Db:
        def __getitem__(self, name: str) -> Collection:
            return Collection()

    await requests_store.apply_transition(
        Db(),  # type: ignore[arg-type]
        "req-1",
        requests_store.transition(
            event_id="ev-1", status="submitted", at=submitted.submitted_at, actor="intake/web"
        ),
        set_on_insert=requests_store.initial_document(submitted),
        set_status=False,
    )
    assert submission_document(submitted, event_id="ev-1") == inserted[0]


async def test_a_queued_record_is_kept_encoded_and_inserted_as_it_was_given() -> None:
    inserted: list[RawBSONDocument] = []

    async def insert(documents: list[RawBSONDocument]) -> None:
        inserted.extend(documents)

    document = submission_document(a_submission(), event_id="ev-1")
    w = SubmissionWriter(insert, sleep=no_sleep)
    w.add(document)
    assert isinstance(w._buffer[0], RawBSONDocument)  # bytes, not a tree of objects
    await w.flush()
    assert [bson.decode(d.raw, CodecOptions(tz_aware=True)) for d in inserted] == [document]


def test_the_replay_cache_is_bounded_and_forgets_expired_receipts() -> None:
    now = [1000.0]
    cache = ReplayCache(max_entries=2, ttl_seconds=60, clock=lambda: now[0])
    cache.put("a")
    cache.put("b", "verified")
    assert cache.get("a") == "submitted"  # a is now the most recently used
    cache.put("c")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("submitted", None, "submitted")
    assert len(cache) == 2
    now[0] += 61
    assert cache.get("a") is None
    assert cache.get("c") is None
    assert len(cache) == 0


def test_an_empty_replay_cache_keeps_nothing() -> None:
    cache = ReplayCache(max_entries=0)
    cache.put("a")
    assert cache.get("a") is None
