"""Verify's storage: decisions on the request record, the per-phone history used for
duplicates and floods, and the review queue with its claims.

Every hot-path read and write filters on ``_id`` alone (FerretDB answers only those from its
primary key). Collections:

- ``requests`` (shared): the request record, written by intake; a verifier's decision is
  recorded on it (``review_decision``).
- ``verify_decisions``: ``_id = request_id``, the automatic decision, inserted once: the
  insert is the batch's check that the request was not decided before. It carries the
  submission record as intake writes it (``requests_store.SUBMISSION``), which stands in for
  the record when intake's write was lost, and the duplicates counted on the request
  (``fields.absorbed``, ``fields.duplicates_absorbed``: the merge takes them as the record's).
- ``verify_history``: ``_id = "<phone>#<n>"``, the n-th request of a phone that the duplicate
  and flood rules remember (services/verify/history.py), one sequence per phone across every
  verify process.
- ``review``: ``_id = request_id``, the requests waiting for a human verifier.
- ``review_claims``: ``_id = request_id``, who is working on a review; inserting is claiming.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import DESCENDING, InsertOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.verify import history
from services.verify.domain import PRIORITY_RANK, Decision
from shared import requests_store
from shared.db import Database, Document, pack
from shared.kafka import effect_id
from shared.schemas import SubmittedRequest

DECISIONS = requests_store.DECISIONS
REVIEW = "review"
DUPLICATE_KEY = 11000
REVIEW_CLAIMS = "review_claims"


def decision_document(decision: Decision, *, at: datetime, by: str) -> Document:
    return {
        "outcome": decision.outcome,
        "priority": decision.priority,
        "green_channel": decision.green_channel,
        "phone": decision.phone,
        "district": decision.district,
        "special_groups": list(decision.special_groups),
        "reasons": list(decision.reasons),
        "problems": list(decision.problems),
        "duplicate_of": decision.duplicate_of,
        "at": at,
        "by": by,
    }


def decision_from(doc: Document) -> tuple[Decision, datetime]:
    """The decision stored by :func:`decision_document`, and when it was taken."""
    decision = Decision(
        outcome=doc["outcome"],
        priority=doc["priority"],
        green_channel=bool(doc["green_channel"]),
        phone=doc.get("phone"),
        district=doc.get("district"),
        special_groups=tuple(doc.get("special_groups", ())),
        reasons=tuple(doc.get("reasons", ())),
        problems=tuple(doc.get("problems", ())),
        duplicate_of=doc.get("duplicate_of"),
    )
    return decision, doc["at"]


def decision_fields(
    decision: Decision, *, at: datetime, actor: str, store_as: str | None = "verification"
) -> Document:
    """What a decision sets on the request record; with ``store_as`` None, without the
    decision itself (a decision record holds it once, in ``decision``)."""
    fields: Document = {
        "priority": decision.priority,
        "green_channel": decision.green_channel,
        "reasons": decision.all_reasons,
        "phone_normalised": decision.phone,
        "district": decision.district,
        "duplicate_of": decision.duplicate_of,
    }
    if store_as is not None:
        fields[store_as] = decision_document(decision, at=at, by=actor)
    return fields


def decision_record(
    submitted: SubmittedRequest, event_id: str, decision: Decision, *, at: datetime
) -> Document:
    """Verify's own record of an automatic decision (``verify_decisions``): the decision, the
    fields and the timeline entry it adds to the request, and the submission record as intake
    writes it, in case intake's write is lost (``requests_store.merged``)."""
    request_id = submitted.request_id
    return {
        "_id": request_id,
        "event_id": event_id,
        requests_store.SUBMISSION: pack(submission_record(submitted)),
        # Packed (shared.db.pack): read whole only; the merged record shows it as its
        # ``verification`` (requests_store.merged).
        requests_store.DECISION: pack(decision_document(decision, at=at, by="verify")),
        "fields": decision_fields(decision, at=at, actor="verify", store_as=None),
        "entry": requests_store.transition(
            event_id=event_id,
            status=decision.outcome,
            at=at,
            actor="verify",
            reason=",".join(decision.all_reasons),
        ),
    }


def submission_record(submitted: SubmittedRequest) -> Document:
    """The request record as intake writes it for ``submitted``."""
    return requests_store.submission_document(
        submitted, event_id=effect_id("submitted", submitted.request_id)
    )


def absorb_update(duplicate_id: str) -> Document:
    """Count a duplicate on its original's decision (read as the original's record's)."""
    return {
        "$addToSet": {"fields.absorbed": duplicate_id},
        "$inc": {"fields.duplicates_absorbed": 1},
    }


def review_document(submitted: SubmittedRequest, decision: Decision, *, at: datetime) -> Document:
    """A request waiting in the review queue."""
    return {
        "_id": submitted.request_id,
        "state": "open",
        "priority": decision.priority,
        "priority_rank": PRIORITY_RANK[decision.priority],
        "green_channel": decision.green_channel,
        "reasons": decision.all_reasons,
        "category": submitted.request.category,
        "language": submitted.request.language,
        "submitted_at": submitted.submitted_at,
        "flagged_at": at,
        "submitted": submitted.model_dump(mode="json"),
        "verification": decision_document(decision, at=at, by="verify"),
    }


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Literal["claimed", "held", "taken", "missing", "closed"]
    verifier: str | None = None
    expires_at: datetime | None = None


class VerifyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        # The history is read back at start by submission time.
        await self.db[history.COLLECTION].create_index("submitted_at")

    # ----------------------------------------------------------------- automatic path

    async def stored_decision(self, request_id: str) -> Document | None:
        """The automatic decision stored by a first processing."""
        return await self.db[DECISIONS].find_one({"_id": request_id})

    async def store_decision(
        self, submitted: SubmittedRequest, *, event_id: str, decision: Decision, at: datetime
    ) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db[DECISIONS].insert_one(
                decision_record(submitted, event_id, decision, at=at)
            )

    async def ensure_record(self, submitted: SubmittedRequest) -> None:
        """The request record, as intake creates it, if intake's write never landed (for a
        decision stored without the record's copy)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[requests_store.COLLECTION].insert_one(submission_record(submitted))

    async def claim_history(self, entries: list[Document]) -> set[str]:
        """Insert history entries keyed by their phone's slot, in one command; the ids of the
        entries inserted (a slot that exists was taken by another decision)."""
        if not entries:
            return set()
        taken: set[str] = set()
        try:
            await self.db[history.COLLECTION].bulk_write(
                [InsertOne(e) for e in entries], ordered=False
            )
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            taken = {str(entries[int(e["index"])]["_id"]) for e in errors}
        return {str(e["_id"]) for e in entries} - taken

    async def history_from(self, phone: str, slot: int) -> list[Document]:
        """A phone's entries from ``slot`` on, each read by ``_id`` until one is missing."""
        found: list[Document] = []
        while (
            doc := await self.db[history.COLLECTION].find_one({"_id": history.slot_id(phone, slot)})
        ) is not None:
            found.append(doc)
            slot += 1
        return found

    async def recent_history(self, since: datetime) -> AsyncIterator[Document]:
        """The remembered requests submitted since ``since``, newest first (read at start,
        as a stream: the window may hold more than memory keeps)."""
        cursor = (
            self.db[history.COLLECTION]
            .find({"submitted_at": {"$gte": since}})
            .sort([("submitted_at", DESCENDING), ("request_id", DESCENDING)])
        )
        async for doc in cursor:
            yield doc

    async def record_decision(
        self,
        submitted: SubmittedRequest,
        decision: Decision,
        *,
        event_id: str,
        at: datetime,
        actor: str,
        reason: str | None = None,
        category: str | None = None,
        store_as: Literal["verification", "review_decision"] = "verification",
    ) -> bool:
        """Store the decision once; creates the request record if intake's write is missing
        (from the automatic decision's copy, else from ``submitted``).

        The automatic decision is kept under ``verification`` (a redelivered submission
        republishes it), a verifier's under ``review_decision``."""
        fields: Document = {"category": category} if category else {}
        return await requests_store.apply_transition(
            self.db,
            submitted.request_id,
            requests_store.transition(
                event_id=event_id,
                status=decision.outcome,
                at=at,
                actor=actor,
                reason=reason or ",".join(decision.all_reasons),
            ),
            set_fields={
                **decision_fields(decision, at=at, actor=actor, store_as=store_as),
                **fields,
            },
            set_on_insert=requests_store.initial_document(submitted),
        )

    async def absorb_duplicate(self, *, original_id: str, duplicate_id: str) -> None:
        """Count a duplicate on its original's decision, once per duplicate."""
        collection = self.db[DECISIONS]
        original = await collection.find_one({"_id": original_id}, {"fields.absorbed": 1})
        if original is not None and duplicate_id in original.get("fields", {}).get("absorbed", ()):
            return
        await collection.update_one({"_id": original_id}, absorb_update(duplicate_id))

    async def request_exists(self, request_id: str) -> bool:
        """Whether the request is known: its record, else its decision (a lost record)."""
        for name in (requests_store.COLLECTION, DECISIONS):
            if await self.db[name].find_one({"_id": request_id}, {"_id": 1}) is not None:
                return True
        return False

    # ----------------------------------------------------------------- review queue

    async def open_review(
        self, submitted: SubmittedRequest, decision: Decision, *, at: datetime
    ) -> None:
        """Put the request in the review queue (once: a redelivery leaves it as it is)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[REVIEW].insert_one(review_document(submitted, decision, at=at))

    async def open_reviews(self, limit: int) -> list[Document]:
        """Open reviews, most urgent first, then oldest (a scan; the queue is small)."""
        cursor = (
            self.db[REVIEW]
            .find({"state": "open"})
            .sort([("priority_rank", 1), ("submitted_at", 1), ("_id", 1)])
            .limit(limit)
        )
        reviews = [doc async for doc in cursor]
        claims = {doc["_id"]: doc async for doc in self.db[REVIEW_CLAIMS].find({})}
        for review in reviews:
            claim = claims.get(review["_id"])
            review["claim"] = (
                {"verifier": claim["verifier"], "expires_at": claim["expires_at"]}
                if claim
                else None
            )
        return reviews

    async def get_review(self, request_id: str) -> Document | None:
        return await self.db[REVIEW].find_one({"_id": request_id})

    async def claim_of(self, request_id: str) -> Document | None:
        """Who claimed a review and until when (None: nobody)."""
        claim = await self.db[REVIEW_CLAIMS].find_one({"_id": request_id})
        return {"verifier": claim["verifier"], "expires_at": claim["expires_at"]} if claim else None

    async def claim(
        self, request_id: str, *, verifier: str, now: datetime, ttl: timedelta
    ) -> Claim:
        """Claim a review: inserting the claim document is the lock (its _id is unique)."""
        review = await self.get_review(request_id)
        if review is None:
            return Claim("missing")
        if review.get("state") != "open":
            return Claim("closed", review.get("decided_by"))
        claims = self.db[REVIEW_CLAIMS]
        fresh: Document = {
            "_id": request_id,
            "claim_id": str(uuid.uuid4()),
            "verifier": verifier,
            "claimed_at": now,
            "expires_at": now + ttl,
        }
        for _ in range(3):
            try:
                await claims.insert_one(fresh)
                return Claim("claimed", verifier, fresh["expires_at"])
            except DuplicateKeyError:
                pass
            current = await claims.find_one({"_id": request_id})
            if current is None:
                continue  # released meanwhile: try again
            if current["verifier"] == verifier:
                return await self._extend(current, now=now, ttl=ttl)
            if current["expires_at"] > now:
                return Claim("taken", current["verifier"], current["expires_at"])
            # Abandoned: remove exactly that claim (not one somebody took over meanwhile),
            # then race for the insert like everybody else.
            await claims.delete_one({"_id": request_id, "claim_id": current["claim_id"]})
        return Claim("taken")

    async def hold(self, request_id: str, *, verifier: str, now: datetime, ttl: timedelta) -> Claim:
        """Confirm and extend the caller's claim before acting on it."""
        current = await self.db[REVIEW_CLAIMS].find_one({"_id": request_id})
        if current is None:
            return Claim("missing")
        if current["verifier"] != verifier:
            return Claim("taken", current["verifier"], current["expires_at"])
        return await self._extend(current, now=now, ttl=ttl)

    async def _extend(self, current: Document, *, now: datetime, ttl: timedelta) -> Claim:
        # Conditional on the claim id: an expired claim someone else replaced is not ours.
        result = await self.db[REVIEW_CLAIMS].update_one(
            {"_id": current["_id"], "claim_id": current["claim_id"]},
            {"$set": {"expires_at": now + ttl}},
        )
        if result.matched_count != 1:
            return Claim("taken")
        return Claim("held", current["verifier"], now + ttl)

    async def close_review(
        self, request_id: str, *, verifier: str, at: datetime, decision: dict[str, Any]
    ) -> None:
        await self.db[REVIEW].update_one(
            {"_id": request_id},
            {
                "$set": {
                    "state": "decided",
                    "decided_by": verifier,
                    "decided_at": at,
                    "decision": decision,
                }
            },
        )
        await self.db[REVIEW_CLAIMS].delete_one({"_id": request_id})
