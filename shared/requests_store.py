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
    """
    collection = db[COLLECTION]
    update_set: Document = {"updated_at": entry["at"]}
    if set_status:
        update_set["status"] = entry["status"]
    if set_fields:
        update_set.update(set_fields)
    update: Document = {
        "$set": update_set,
        "$push": {"timeline": entry},
        "$addToSet": {"applied_events": entry["event_id"]},
    }
    if set_on_insert:
        # A field may be set by one operator only: what this transition sets wins.
        update["$setOnInsert"] = {
            k: v for k, v in set_on_insert.items() if k not in update_set and k != "_id"
        }
    try:
        result = await collection.update_one(
            {"_id": request_id, "applied_events": {"$ne": entry["event_id"]}},
            update,
            upsert=set_on_insert is not None,
        )
    except DuplicateKeyError:
        # The request exists and already has this event: the upsert's insert collided.
        return False
    return result.upserted_id is not None or result.modified_count == 1


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
