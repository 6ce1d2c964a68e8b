"""Lookups by ``_id`` go through the database's index, on the real server.

Every stage reads and writes a request by its id. FerretDB's SQLite backend, unpatched, wrote its
``_id`` index on one spelling of the JSON path and queried another, so SQLite scanned the whole
collection on every lookup (deploy/local/ferretdb/patches). The query plan tells which it is.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

pytestmark = pytest.mark.integration


def plan_uses_id_index(explained: dict[str, Any]) -> bool:
    """Whether an ``explain`` answer shows a lookup through the ``_id`` index."""
    if "ferretdbVersion" in explained.get("serverInfo", {}):
        steps = explained["queryPlanner"]["Plan"]
        return any("USING INDEX" in step and "__id_" in step for step in steps)
    # MongoDB: the id fast path (IDHACK, EXPRESS_IXSCAN in 8.0) or an index scan on _id.
    text = str(explained["queryPlanner"]["winningPlan"])
    return "IDHACK" in text or "EXPRESS" in text or "'_id_'" in text


async def test_lookup_by_id_uses_the_index(mongo: AsyncMongoClient[dict[str, Any]]) -> None:
    db = mongo[f"test_index_{uuid.uuid4().hex[:8]}"]
    try:
        await db["requests"].insert_many(
            [{"_id": f"r-{i}", "status": "submitted", "n": i} for i in range(200)]
        )
        by_id = await db.command({"explain": {"find": "requests", "filter": {"_id": "r-150"}}})
        assert plan_uses_id_index(by_id), by_id["queryPlanner"]
        # The check itself can fail: a filter on another field is not an _id lookup.
        other = await db.command({"explain": {"find": "requests", "filter": {"n": 150}}})
        assert not plan_uses_id_index(other), other["queryPlanner"]
        assert (await db["requests"].find_one({"_id": "r-150"}) or {}).get("n") == 150
    finally:
        await mongo.drop_database(db.name)
