"""Notify's storage, read and written by ``_id`` only (FerretDB scans on any other filter).

- ``notifications``: one document per (request, event, channel) — the delivery's own record,
  ``pending`` → ``sent`` | ``failed`` | ``suppressed``, with every attempt's outcome (the batch
  path inserts it once, with its outcome, all but its id, request and status packed in
  ``detail``: :func:`packed_delivery`; read it through :func:`delivery_record`);
- ``notification_claims``: the batch path's claim on a message, inserted before it is sent,
  with the message's slot of the per-citizen rate limit in ``slot`` when it counts against it,
  ``"<phone hash>|<window>|<n>"`` for the n-th message admitted in the window; the slots the
  per-record path takes are documents of their own here (``_id`` = ``"slot|<slot>"``,
  shared/quota.py); a unique index on ``slot`` gives each slot one winner;
- ``surveys``: one per request, from the survey sent after resolution to the citizen's answer;
- ``satisfaction``: counters per team and category (``_id = "<team_id>|<category>"``);
- ``requests``: the shared request record (contact fallback, tracking token, timeline).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared import requests_store
from shared.db import Database, Document, pack, unpack

NOTIFICATIONS = "notifications"
# The batch path's claims (services/notify/plans.py), keyed by the notification id.
CLAIMS = "notification_claims"
# The field of a claim (or of a slot's own document) that holds a rate-limit slot.
SLOT = "slot"
# The field of a delivery record that holds, packed (shared.db.pack), what no query filters on:
# everything but the id, the request (indexed) and the status.
DETAIL = "detail"
_UNPACKED = frozenset(("_id", "request_id", "status"))
SURVEYS = "surveys"
SATISFACTION = "satisfaction"
# The open surveys' next step (remind, close) and when it falls due; only unanswered surveys
# have one, so the scan stays small.
SURVEY_TIMERS = "survey_timers"


def packed_delivery(document: Document) -> Document:
    """A delivery record as the batch path inserts it: its id, request and status as fields,
    the rest packed in ``DETAIL`` (FerretDB's cost per insert follows the number of fields)."""
    stored = {key: document[key] for key in _UNPACKED if key in document}
    stored[DETAIL] = pack({k: v for k, v in document.items() if k not in _UNPACKED})
    return stored


def delivery_record(stored: Document) -> Document:
    """A stored delivery record whole, packed or not. The per-record path updates a packed one
    by field (a later attempt): a field set on the record wins over the packed one, and the
    attempts it appended follow the packed ones."""
    if DETAIL not in stored:
        return stored
    detail = unpack(stored[DETAIL])
    doc = {**detail, **{k: v for k, v in stored.items() if k != DETAIL}}
    if "attempt_log" in stored and "attempt_log" in detail:
        doc["attempt_log"] = [*detail["attempt_log"], *stored["attempt_log"]]
    return doc


class NotifyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        # For operators' queries ("what did we send for this request"); handlers use _id only.
        await self.db[NOTIFICATIONS].create_index("request_id")
        # The survey timers are read by due time.
        await self.db[SURVEY_TIMERS].create_index("due_at")
        # One winner per rate-limit slot, whether a claim or the slot's own document holds it
        # (sparse: most claims hold none).
        await self.db[CLAIMS].create_index(SLOT, unique=True, sparse=True)

    async def claimed_slot(self, notification_id: str) -> str | None:
        """The rate-limit slot the batch path's claim on this message won, if any."""
        doc = await self.db[CLAIMS].find_one({"_id": notification_id}, {SLOT: 1})
        return None if doc is None or not doc.get(SLOT) else str(doc[SLOT])

    # --- deliveries ---

    async def claim(self, *, notification_id: str, fields: Document, at: datetime) -> Document:
        """The delivery record, created as ``pending`` the first time; the stored one after."""
        doc: Document = {
            "_id": notification_id,
            **fields,
            "status": "pending",
            "attempts": 0,
            "attempt_log": [],
            "created_at": at,
        }
        try:
            await self.db[NOTIFICATIONS].insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db[NOTIFICATIONS].find_one({"_id": notification_id})
            if existing is not None:
                return delivery_record(existing)
        return doc

    async def store_delivery(self, document: Document) -> None:
        """A delivery record with its outcome, stored once."""
        with contextlib.suppress(DuplicateKeyError):
            await self.db[NOTIFICATIONS].insert_one(document)

    async def update_delivery(self, notification_id: str, fields: Document) -> None:
        await self.db[NOTIFICATIONS].update_one({"_id": notification_id}, {"$set": fields})

    async def record_attempt(
        self,
        notification_id: str,
        *,
        attempt: int,
        status: str,
        at: datetime,
        error: str | None,
        fields: Document | None = None,
    ) -> None:
        """One attempt's outcome on the delivery record, with ``fields`` set in the same write."""
        entry = {"attempt": attempt, "status": status, "at": at, "error": error}
        await self.db[NOTIFICATIONS].update_one(
            {"_id": notification_id},
            {
                "$set": {"attempts": attempt, "updated_at": at, **(fields or {})},
                "$push": {"attempt_log": entry},
            },
        )

    # --- the shared request record ---

    async def get_request(self, request_id: str) -> Document | None:
        fields = ("contact", "phone_normalised", "language", "category", "tracking_token_hash")
        doc = await self.db[requests_store.COLLECTION].find_one(
            {"_id": request_id}, requests_store.projection(*fields)
        )
        return None if doc is None else requests_store.record(doc)

    async def record_transition(
        self,
        request_id: str,
        entry: Document,
        *,
        set_status: bool,
        set_on_insert: Document | None = None,
    ) -> bool:
        return await requests_store.apply_transition(
            self.db, request_id, entry, set_status=set_status, set_on_insert=set_on_insert
        )

    # --- survey ---

    async def open_survey(self, request_id: str, fields: Document) -> Document:
        """The survey record, created the first time a survey goes out for the request."""
        doc: Document = {"_id": request_id, **fields, "answer": None, "counted": False}
        try:
            await self.db[SURVEYS].insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db[SURVEYS].find_one({"_id": request_id})
            if existing is not None:
                return existing
        return doc

    async def get_survey(self, request_id: str) -> Document | None:
        return await self.db[SURVEYS].find_one({"_id": request_id})

    async def update_survey(self, request_id: str, fields: Document) -> None:
        await self.db[SURVEYS].update_one({"_id": request_id}, {"$set": fields})

    async def count_satisfaction(self, key: str, *, satisfied: bool, at: datetime) -> None:
        field = "satisfied" if satisfied else "unsatisfied"
        await self.db[SATISFACTION].update_one(
            {"_id": key},
            {"$inc": {field: 1}, "$set": {"updated_at": at}},
            upsert=True,
        )

    async def satisfaction(self, key: str) -> dict[str, Any] | None:
        return await self.db[SATISFACTION].find_one({"_id": key})

    # --- survey timers ---

    async def arm_survey_timer(self, request_id: str, *, step: str, due_at: datetime) -> None:
        """Start the survey's timer (kept as it is when the survey is sent again)."""
        await self.db[SURVEY_TIMERS].update_one(
            {"_id": request_id},
            {"$setOnInsert": {"step": step, "due_at": due_at}},
            upsert=True,
        )

    async def move_survey_timer(self, request_id: str, *, step: str, due_at: datetime) -> None:
        await self.db[SURVEY_TIMERS].update_one(
            {"_id": request_id}, {"$set": {"step": step, "due_at": due_at}}
        )

    async def stop_survey_timer(self, request_id: str) -> None:
        await self.db[SURVEY_TIMERS].delete_one({"_id": request_id})

    async def due_survey_timers(self, now: datetime) -> list[Document]:
        """Timers whose step is due: a range query on the indexed due time."""
        return [doc async for doc in self.db[SURVEY_TIMERS].find({"due_at": {"$lte": now}})]
