"""The request record every stage updates: current status plus the timeline of transitions.

Collection ``requests``, one document per request id. Each transition carries the id of the
event that caused it; a transition whose event id is already applied is skipped, so redelivered
events never add a second entry (the write is idempotent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.db import Database, Document
from shared.schemas import SubmittedRequest

COLLECTION = "requests"


def transition(
    *,
    event_id: str,
    status: str,
    at: datetime,
    actor: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Document:
    """One timeline entry: what, when, who or which stage, why."""
    entry: Document = {"event_id": event_id, "status": status, "at": at, "actor": actor}
    if reason:
        entry["reason"] = reason
    if detail:
        entry["detail"] = detail
    return entry


async def apply_transition(
    db: Database,
    request_id: str,
    entry: Document,
    *,
    set_fields: Document | None = None,
    set_on_insert: Document | None = None,
    set_status: bool = True,
) -> bool:
    """Record a transition once. Returns False when this event was already applied.

    ``set_on_insert`` creates the request when this is the first the database hears of it (a
    later stage may see an event before the earlier stage's write, e.g. after a restore).

    Every query filters on ``_id`` alone: FerretDB answers those from its primary key, while
    any further condition makes it scan the collection. Records of one request are handled by
    one consumer at a time (the request id is the partition key), so read-then-write is safe
    within a stage; writes from different stages touch the same document with atomic operators.
    """
    collection = db[COLLECTION]
    event_id = entry["event_id"]
    current = await collection.find_one({"_id": request_id}, {"applied_events": 1})
    if current is not None and event_id in current.get("applied_events", ()):
        return False
    update_set: Document = {"updated_at": entry["at"]}
    if set_status:
        update_set["status"] = entry["status"]
    if set_fields:
        update_set.update(set_fields)
    if current is None and set_on_insert is not None:
        document = {
            **set_on_insert,
            **update_set,
            "_id": request_id,
            "timeline": [entry],
            "applied_events": [event_id],
        }
        try:
            await collection.insert_one(document)
            return True
        except DuplicateKeyError:
            pass  # another stage created it meanwhile: fall through to the update
    result = await collection.update_one(
        {"_id": request_id},
        {
            "$set": update_set,
            "$push": {"timeline": entry},
            "$addToSet": {"applied_events": event_id},
        },
    )
    return result.matched_count == 1


async def ensure_indexes(db: Database) -> None:
    await db[COLLECTION].create_index("status")
    await db[COLLECTION].create_index("updated_at")


async def get_request(db: Database, request_id: str) -> Document | None:
    return await db[COLLECTION].find_one({"_id": request_id})


def initial_document(submitted: SubmittedRequest) -> Document:
    """The request record as created from its submission (by intake, or by verify if first)."""
    req = submitted.request
    return {
        "request_id": submitted.request_id,
        "status": "submitted",
        "channel": submitted.channel,
        "client_id": submitted.client_id,
        "partner_id": submitted.partner_id,
        "external_id": submitted.external_id,
        "category": req.category,
        "description": req.description,
        "contact": req.contact.model_dump(),
        "location": req.location.model_dump() if req.location else {},
        "special_groups": list(req.special_groups),
        "language": req.language,
        "submitted_at": submitted.submitted_at,
        "tracking_token_hash": submitted.tracking_token_hash,
        "priority": None,
        "departments": [],
        "duplicate_of": None,
    }


def transition_write(
    request_id: str,
    entry: Document,
    *,
    set_fields: Document,
    set_on_insert: Document,
) -> tuple[Document, Document]:
    """The filter and upsert of one first-time transition, for a bulk write: the stage that
    plans it knows the event is new (its guard insert just succeeded), so no read is needed.
    ``set_on_insert`` creates the record when the earlier stage's write has not landed yet."""
    update_set: Document = {"updated_at": entry["at"], "status": entry["status"], **set_fields}
    on_insert = {
        key: value
        for key, value in set_on_insert.items()
        if key not in update_set and key not in ("_id", "timeline", "applied_events")
    }
    update: Document = {
        "$set": update_set,
        "$push": {"timeline": entry},
        "$addToSet": {"applied_events": entry["event_id"]},
    }
    if on_insert:
        update["$setOnInsert"] = on_insert
    return {"_id": request_id}, update
