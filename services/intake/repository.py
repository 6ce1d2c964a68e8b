"""Intake's storage: the request record as first accepted, partner nonces, Open311 tokens.

Reads and writes go by ``_id`` alone (FerretDB answers only those from its primary key); the
Open311 request search scans, which is fine for that rare, capped query. Submission records are
not written on the request path: ``recorder.SubmissionWriter`` inserts them in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from shared import requests_store
from shared.db import Database, Document
from shared.schemas import SubmittedRequest

NONCES = "partner_nonces"
OPEN311_TOKENS = "open311_tokens"
# Short tracking codes, both ways, each keyed by its _id: code → request, request → code.
TRACKING_CODES = "tracking_codes"
TRACKING_CODE_OF = "tracking_code_of"


def submission_document(submitted: SubmittedRequest, *, event_id: str) -> Document:
    """The request record as intake creates it: exactly the document
    ``requests_store.apply_transition`` inserts for the "submitted" transition of ``event_id``
    with ``set_on_insert=initial_document(submitted)`` and ``set_status=False`` — the initial
    fields, ``updated_at``, the timeline's first entry and the applied event (a unit test
    compares the two)."""
    entry = {
        **requests_store.transition(
            event_id=event_id,
            status="submitted",
            at=submitted.submitted_at,
            actor=f"intake/{submitted.channel}",
        ),
        "sets_status": False,  # as apply_transition marks an entry with set_status=False
    }
    return {
        **requests_store.initial_document(submitted),
        "updated_at": entry["at"],
        "_id": submitted.request_id,
        "timeline": [entry],
        "applied_events": [event_id],
    }


class IntakeRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await requests_store.ensure_indexes(self.db)

    async def get(self, request_id: str) -> Document | None:
        return await requests_store.get_request(self.db, request_id)

    async def insert_submissions(self, documents: Sequence[Document | RawBSONDocument]) -> None:
        """One unordered insert of submission records (``submission_document``): each one that
        exists already fails alone, as a duplicate ``_id`` (raised as ``BulkWriteError``)."""
        await self.db[requests_store.COLLECTION].insert_many(documents, ordered=False)

    async def claim_nonce(self, *, partner_id: str, nonce: str, at: datetime) -> bool:
        """True the first time this partner uses this nonce; False for a replay."""
        try:
            await self.db[NONCES].insert_one({"_id": f"{partner_id}:{nonce}", "at": at})
        except DuplicateKeyError:
            return False
        return True

    async def forget_nonces(self, *, before: datetime) -> int:
        """Drop nonces old enough that their timestamps are refused as stale anyway."""
        result = await self.db[NONCES].delete_many({"at": {"$lt": before}})
        return result.deleted_count

    async def save_open311_token(self, *, token_hash: str, request_id: str) -> None:
        await self.db[OPEN311_TOKENS].update_one(
            {"_id": token_hash}, {"$set": {"request_id": request_id}}, upsert=True
        )

    async def request_for_token(self, token_hash: str) -> str | None:
        doc = await self.db[OPEN311_TOKENS].find_one({"_id": token_hash})
        return str(doc["request_id"]) if doc else None

    async def search(
        self,
        *,
        categories: tuple[str, ...],
        statuses: tuple[str, ...],
        start: datetime,
        end: datetime,
        limit: int,
    ) -> list[Document]:
        """Requests submitted in [start, end], newest first, at most ``limit`` (a scan)."""
        query: dict[str, Any] = {"submitted_at": {"$gte": start, "$lte": end}}
        if categories:
            query["category"] = {"$in": list(categories)}
        projection = {"applied_events": 0, "contact": 0, "description": 0}
        cursor = self.db[requests_store.COLLECTION].find(query, projection)
        if not statuses:
            cursor = cursor.sort("submitted_at", DESCENDING).limit(limit)
            return await requests_store.merge_all(self.db, [doc async for doc in cursor])
        # The status is the merged record's (verify's and route's first steps are stored
        # apart from the record), so it is filtered after the merge.
        docs = await requests_store.merge_all(self.db, [doc async for doc in cursor])
        wanted = [doc for doc in docs if doc.get("status") in statuses]
        wanted.sort(key=lambda doc: doc["submitted_at"], reverse=True)
        return wanted[:limit]

    async def code_of(self, request_id: str) -> str | None:
        doc = await self.db[TRACKING_CODE_OF].find_one({"_id": request_id})
        return str(doc["code"]) if doc else None

    async def request_of_code(self, code: str) -> str | None:
        doc = await self.db[TRACKING_CODES].find_one({"_id": code})
        return str(doc["request_id"]) if doc else None

    async def claim_code(self, code: str, request_id: str, *, at: datetime) -> bool:
        """Takes ``code`` for the request; False when another request holds it already."""
        try:
            await self.db[TRACKING_CODES].insert_one(
                {"_id": code, "request_id": request_id, "at": at}
            )
        except DuplicateKeyError:
            return False
        return True

    async def assign_code(self, request_id: str, code: str, *, at: datetime) -> str:
        """Records ``code`` as the request's; the code already recorded wins a race."""
        try:
            await self.db[TRACKING_CODE_OF].insert_one({"_id": request_id, "code": code, "at": at})
        except DuplicateKeyError:
            return await self.code_of(request_id) or code
        return code
