"""The database side of the batch runner: a batch's guard inserts and its writes, in as few
commands as the database takes well (unordered inserts, ordered bulk updates in chunks)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from shared.db import DUPLICATE_KEY, Database, Document
from shared.plans import Insert, Plan, Write

# FerretDB 1.x made no progress on an update command of 100 or more statements.
MAX_STATEMENTS: Final = 50


@dataclass
class BulkWriter:
    """Applies plans' writes to ``db``; every command is bounded by ``timeout_seconds``."""

    db: Database | None
    max_statements: int = MAX_STATEMENTS
    timeout_seconds: float = 20.0

    async def guards(self, plans: dict[int, Plan]) -> set[int]:
        """Insert every plan's guard; the indexes of the records whose guard already existed
        (or whose cause came twice in this batch: the first one is applied)."""
        owners: dict[tuple[str, Any], int] = {}
        documents: dict[str, list[Document]] = defaultdict(list)
        redelivered: set[int] = set()
        for index, planned in plans.items():
            for guard in planned.guards:
                key = (guard.collection, guard.document["_id"])
                if key in owners:
                    redelivered.add(index)
                    continue
                owners[key] = index
                documents[guard.collection].append(guard.document)
        for collection, docs in documents.items():
            for existing in await self.insert(collection, docs):
                redelivered.add(owners[(collection, existing)])
        return redelivered

    async def apply(self, writes: Sequence[Write]) -> None:
        """Per collection: the inserts, then the updates in plan order; counters that only
        ``$inc`` one document are summed into one statement per document. The collections go
        concurrently (every write is keyed and stands alone): a batch waits for its slowest
        collection, not for the sum of them."""
        inserts: dict[str, list[Document]] = defaultdict(list)
        updates: dict[str, list[UpdateOne]] = defaultdict(list)
        counters: dict[tuple[str, Any], Counter[str]] = {}
        for write in writes:
            if isinstance(write, Insert):
                inserts[write.collection].append(write.document)
            elif (
                set(write.update) == {"$inc"} and set(write.filter) == {"_id"} and not write.upsert
            ):
                key = (write.collection, write.filter["_id"])
                counters.setdefault(key, Counter()).update(write.update["$inc"])
            else:
                updates[write.collection].append(
                    UpdateOne(write.filter, write.update, upsert=write.upsert)
                )
        for (collection, doc_id), increments in counters.items():
            updates[collection].append(UpdateOne({"_id": doc_id}, {"$inc": dict(increments)}))
        await _all(self.insert(c, docs) for c, docs in inserts.items())
        await _all(self._update(c, ops) for c, ops in updates.items())

    async def _update(self, collection: str, operations: Sequence[UpdateOne]) -> None:
        """One collection's updates in order, in commands the database takes well."""
        for start in range(0, len(operations), self.max_statements):
            chunk = list(operations[start : start + self.max_statements])
            await self._call(self._database()[collection].bulk_write(chunk, ordered=True))

    async def insert(self, collection: str, documents: Sequence[Document]) -> list[Any]:
        """Unordered inserts in chunks; returns the ``_id`` of every document that existed."""
        existed: list[Any] = []
        for start in range(0, len(documents), self.max_statements * 2):
            chunk = list(documents[start : start + self.max_statements * 2])
            try:
                await self._call(
                    self._database()[collection].bulk_write(
                        [InsertOne(doc) for doc in chunk], ordered=False
                    )
                )
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                existed.extend(chunk[e["index"]]["_id"] for e in errors)
        return existed

    def _database(self) -> Database:
        if self.db is None:
            raise RuntimeError("this stage applies database writes but was given no database")
        return self.db

    async def _call(self, call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, timeout=self.timeout_seconds)


async def _all(calls: Iterable[Awaitable[Any]]) -> None:
    """Await every call; once all have ended, raise the first failure (none is left running
    behind the caller's retry)."""
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result
