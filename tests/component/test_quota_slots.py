"""A rate limit whose slots travel in other inserts (notify's claims) and in documents of their
own, shared by two processes on one collection: each slot has one winner, so the limit holds
exactly. Needs the database (``MONGODB_URI``), hence the ``integration`` marker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.quota import WindowQuota

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def claims(mongodb_uri: str) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    db = client[f"test_quota_{uuid.uuid4().hex[:10]}"]
    await db["claims"].create_index("slot", unique=True, sparse=True)
    try:
        yield db["claims"]
    finally:
        await client.drop_database(db.name)
        await client.close()


def _quota(collection: AsyncCollection[dict[str, Any]], limit: int = 3) -> WindowQuota:
    return WindowQuota(collection, limit=limit, window_seconds=3600, field="slot")


async def _claim(collection: AsyncCollection[dict[str, Any]], owner: str, slot: str) -> bool:
    """A claim carrying its slot, as notify's batch path inserts it: True when it won."""
    try:
        await collection.insert_one({"_id": owner, "claimed_at": AT, "slot": slot})
    except DuplicateKeyError:
        return False
    return True


async def test_two_processes_admit_exactly_the_limit_between_them(
    claims: AsyncCollection[dict[str, Any]],
) -> None:
    a, b = _quota(claims), _quota(claims)
    first, second = a.propose("phone", AT, owner="n1"), a.propose("phone", AT, owner="n2")
    assert isinstance(first, str)
    assert isinstance(second, str)
    assert first != second
    assert await _claim(claims, "n1", first)
    assert await _claim(claims, "n2", second)
    # The other process learns of the two slots only from its own inserts: it wins the third.
    assert await b.take_many(["phone", "phone"], AT) == [True, False]
    third = a.propose("phone", AT, owner="n3")
    assert isinstance(third, str)
    assert not await _claim(claims, "n3", third), "the slot was won by the other process"
    assert await a.take_many(["phone"], AT) == [False]
    # Once every slot is known taken, memory refuses without a proposal.
    assert a.propose("phone", AT, owner="n4") is False
    stored = [doc["slot"] async for doc in claims.find({"slot": {"$exists": True}})]
    assert sorted(stored) == sorted({first, second, third})
    assert len(stored) == 3


async def test_a_plan_made_again_reuses_its_slot_and_other_keys_are_apart(
    claims: AsyncCollection[dict[str, Any]],
) -> None:
    quota = _quota(claims, limit=2)
    slot = quota.propose("phone", AT, owner="n1")
    assert quota.propose("phone", AT, owner="n1") == slot, "a rewound batch asks again"
    assert isinstance(quota.propose("phone", AT, owner="n2"), str)
    assert quota.propose("phone", AT, owner="n3") is False, "two slots, both proposed"
    assert isinstance(quota.propose("another phone", AT, owner="n4"), str)


def test_a_proposal_needs_one_admission_per_slot_and_a_slot_field(
    claims: AsyncCollection[dict[str, Any]],
) -> None:
    with pytest.raises(ValueError, match="chunk 1"):
        WindowQuota(claims, limit=8, window_seconds=60, chunk=2, field="slot").propose(
            "phone", AT, owner="n1"
        )
    with pytest.raises(ValueError, match="chunk 1"):
        WindowQuota(claims, limit=8, window_seconds=60).propose("phone", AT, owner="n1")
