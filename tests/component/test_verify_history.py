"""Verify's per-phone history across processes, on the real database: two verify processes
(two contexts with their own memory, one database) each decide requests of one phone, as
when the phone's requests land on partitions of different processes or a rebalance moves a
partition; each decision sees every earlier request of the phone."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.verify import domain, handlers
from services.verify.history import COLLECTION, RecentHistory
from services.verify.repository import VerifyRepository
from services.verify.settings import VerifySettings
from shared.plans import Plan
from shared.schemas import SubmittedRequest
from shared.stage import Record
from shared.topics import Topic
from tests.component.test_verify_handlers import T0, submission
from tests.support.kafka import submitted_headers

pytestmark = pytest.mark.component


@pytest.fixture
async def database(mongodb_uri: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    name = f"test_verify_history_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def process(db: Any, *, max_entries: int = 50_000) -> handlers.VerifyContext:
    """One verify process: its own memory, the shared database (the bus is not used by the
    planner)."""
    settings = VerifySettings()
    config = domain.load_config(
        settings.config_dir,
        jurisdiction_file=settings.jurisdiction_file,
        rules_file=settings.rules_file,
        triage_file=settings.triage_file,
    )
    return handlers.VerifyContext(
        bus=None,  # type: ignore[arg-type]
        repo=VerifyRepository(db),
        config=config,
        history=RecentHistory(limit=config.rules.history_limit, max_entries=max_entries),
        clock=lambda: T0 + timedelta(minutes=5),
    )


def record(submitted: SubmittedRequest, offset: int) -> Record:
    return Record(
        topic=Topic.SUBMITTED.value,
        partition=offset % 2,
        offset=offset,
        key=submitted.request_id.encode(),
        value=submitted.model_dump_json().encode(),
        headers=submitted_headers(submitted),
        timestamp_ms=0,
    )


async def decide(ctx: handlers.VerifyContext, submitted: SubmittedRequest, offset: int) -> Any:
    [outcome] = await handlers.plan_submitted([record(submitted, offset)], ctx=ctx)
    assert isinstance(outcome, Plan)
    return outcome.events[0].value


async def test_a_duplicate_is_found_whichever_process_decided_the_original(database: Any) -> None:
    first, second, third = process(database), process(database), process(database)
    original = submission(phone="138 0013 8000", description="需要胰岛素，家里老人独居")
    again = submission(
        phone="13800138000", description="需要胰岛素 家里老人独居", at=T0 + timedelta(minutes=2)
    )
    other = submission(phone="139 0037 1234", at=T0 + timedelta(minutes=3))

    assert getattr(await decide(first, original, 1), "duplicate_of", None) is None
    # The second process never saw the original (another partition, loaded before it).
    assert (await decide(second, again, 2)).duplicate_of == original.request_id
    assert getattr(await decide(third, other, 3), "duplicate_of", None) is None
    # One sequence per phone, whichever process wrote it.
    ids = sorted([d["_id"] async for d in database[COLLECTION].find({}, {"_id": 1})])
    assert ids == ["+8613800138000#1", "+8613800138000#2", "+8613900371234#1"]


async def test_a_redelivered_request_is_not_its_own_duplicate(database: Any) -> None:
    ctx = process(database)
    original = submission()
    await decide(ctx, original, 1)
    restarted = process(database)
    await restarted.history.load_recent(restarted.repo.recent_history(T0 - timedelta(days=1)))
    assert getattr(await decide(restarted, original, 1), "duplicate_of", None) is None


async def test_a_phone_forgotten_past_the_memory_bound_is_read_back(database: Any) -> None:
    ctx = process(database, max_entries=2)  # one request's entries
    original = submission(phone="138 0013 8000", description="需要胰岛素，家里老人独居")
    other = submission(phone="139 0037 1234", at=T0 + timedelta(minutes=1))
    again = submission(
        phone="13800138000", description="需要胰岛素 家里老人独居", at=T0 + timedelta(minutes=2)
    )
    await decide(ctx, original, 1)
    await decide(ctx, other, 2)
    assert ctx.history.next_slot("+8613800138000") == 1  # forgotten
    assert (await decide(ctx, again, 3)).duplicate_of == original.request_id
    ids = sorted([d["_id"] async for d in database[COLLECTION].find({}, {"_id": 1})])
    assert ids == ["+8613800138000#1", "+8613800138000#2", "+8613900371234#1"]
