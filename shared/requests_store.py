"""The request record: current status plus the timeline of transitions, as every reader sees it.

Collection ``requests``, one document per request id, created from the submission by intake.
On the hot path the later stages do not update it: verify inserts its decision into
``verify_decisions`` and route its first dispatch with its case into ``route_cases``, each
keyed by the request id, and :func:`get_request` merges the three (:func:`merged`). Later,
rarer transitions (a verifier's decision, a department's reports, escalations, the survey) are
recorded on the record itself with :func:`apply_transition`. Each transition carries the id of
the event that caused it; one whose event id is already applied is skipped, and the merge keeps
each event id once, so redelivered events never add a second entry.

Intake stores the record packed (:func:`packed_record`): what its submission fixes and no query
filters on is one value (``BODY``); :func:`record` (and so :func:`merged`) reads it whole, and a
field a later transition sets on the record wins over the packed one.

Intake answers once Kafka has the request and writes the record afterwards, so its write can be
lost (a crash, a database outage longer than its buffer). Verify's decision therefore carries
the record as intake writes it (``submission``, :func:`submission_document`): the merge takes
what the record lacks from it, and the first :func:`apply_transition` on a missing record
inserts it before the transition, so later stages find the record whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from shared.db import Database, Document, pack, unpack
from shared.schemas import SubmittedRequest

COLLECTION = "requests"
# What the hot path stores instead of updating the record: verify's decision and route's case
# (which holds the first dispatch's transitions and leg summary), each keyed by the request id,
# written by verify and route alone.
DECISIONS = "verify_decisions"
CASES = "route_cases"
# The field of a decision that holds the submission record, standing in for a missing one
# (packed: shared.db.pack, read only whole).
SUBMISSION = "submission"
# The field of a decision that holds verify's decision (packed), the merged record's
# ``verification``.
DECISION = "decision"
# The field of a case that holds what its first dispatch adds to the record (packed): its
# ``timeline`` transitions and its ``legs`` summary.
DISPATCH = "dispatch"
# The field of a request record that holds, packed, the submission's fields no query filters
# on (intake's write: :func:`packed_record`; read through :func:`record`).
BODY = "body"
# What a packed record keeps as fields: its id, what queries filter on (category, submission
# time; the status for operators), and what transitions update by field.
_FIELDS = frozenset(
    ("_id", "status", "category", "submitted_at", "updated_at", "timeline", "applied_events")
)


def packed_record(document: Document) -> Document:
    """A request record as intake stores it: ``_FIELDS`` as fields, the rest packed in
    ``BODY`` (FerretDB's cost per insert follows the number of fields)."""
    stored = {key: document[key] for key in _FIELDS if key in document}
    stored[BODY] = pack({k: v for k, v in document.items() if k not in _FIELDS})
    return stored


def record(stored: Document) -> Document:
    """A stored request record with its packed fields read, packed or not; a field a later
    transition set on the record wins over the packed one."""
    if BODY not in stored:
        return dict(stored)
    rest = {key: value for key, value in stored.items() if key != BODY}
    return {**unpack(stored[BODY]), **rest}


def projection(*fields: str) -> Document:
    """A projection of ``fields`` of a stored record, packed or not (for :func:`record`)."""
    return dict.fromkeys((*fields, BODY), 1)


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

    A missing record is first inserted from the copy verify's decision carries (intake's write
    was lost); without a decision, ``set_on_insert`` creates the request when this is the first
    the database hears of it (a later stage may see an event before the earlier stage's write,
    e.g. after a restore).

    Every query filters on ``_id`` alone: FerretDB answers those from its primary key, while
    any further condition makes it scan the collection. Records of one request are handled by
    one consumer at a time (the request id is the partition key), so read-then-write is safe
    within a stage; writes from different stages touch the same document with atomic operators.
    """
    collection = db[COLLECTION]
    event_id = entry["event_id"]
    current = await collection.find_one({"_id": request_id}, {"applied_events": 1})
    if current is None and (current := await _restore(db, request_id)) is not None:
        set_on_insert = None  # the record exists now: the transition is an update
    if current is not None and event_id in current.get("applied_events", ()):
        return False
    update_set: Document = {"updated_at": entry["at"]}
    if set_status:
        update_set["status"] = entry["status"]
    else:
        entry = {**entry, "sets_status": False}  # on the timeline, not the request's status
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


async def _restore(db: Database, request_id: str) -> Document | None:
    """Insert the submission record verify's decision carries, when the record is missing (a
    duplicate ``_id``: another stage restored or created it meanwhile). None without one."""
    decision = await db[DECISIONS].find_one({"_id": request_id}, {SUBMISSION: 1})
    record = unpack(decision.get(SUBMISSION)) if decision is not None else None
    if not record:
        return None
    try:
        await db[COLLECTION].insert_one({**record, "_id": request_id})
    except DuplicateKeyError:
        found = await db[COLLECTION].find_one({"_id": request_id}, {"applied_events": 1})
        return found or record
    return dict(record)


async def ensure_indexes(db: Database) -> None:
    """The one index a query of the record uses: Open311's search by submission time. (The
    status is the merged record's, so no index on the stored one serves a query.)"""
    await db[COLLECTION].create_index("submitted_at")


async def get_request(db: Database, request_id: str) -> Document | None:
    """The request as its readers see it (:func:`merged`), or None if it is unknown."""
    base = await db[COLLECTION].find_one({"_id": request_id})
    decision = await db[DECISIONS].find_one({"_id": request_id})
    if base is None and decision is None:
        return None
    dispatch = await db[CASES].find_one({"_id": request_id}) if decision is not None else None
    return merged(base, decision, dispatch)


def merged(base: Document | None, decision: Document | None, case: Document | None) -> Document:
    """The submission record with verify's decision and route's first dispatch folded in.

    Fields the record lacks (or holds as None) come from the submission record the decision
    carries (``base`` is None or partial when intake's write was lost), then from the
    decision's fields (and its decision as ``verification``); the timeline is the union of
    all of them, each event once, in time order; the status is that of the last transition
    that sets it (a re-routed or oversight leg is on the timeline only)."""
    doc: Document = record(base) if base is not None else {}
    timeline: list[Document] = list(doc.get("timeline", []))
    if decision is not None:
        submission = unpack(decision.get(SUBMISSION))
        for key, value in submission.items():
            if key != "timeline" and doc.get(key) is None:
                doc[key] = value
        timeline.extend(submission.get("timeline", []))
        for key, value in decision.get("fields", {}).items():
            if doc.get(key) is None:
                doc[key] = value
        if doc.get("verification") is None and decision.get(DECISION) is not None:
            doc["verification"] = unpack(decision[DECISION])
        if decision.get("entry"):
            timeline.append(decision["entry"])
    if case is not None:
        # A case stored before its dispatch was packed holds it as fields.
        dispatch = unpack(case[DISPATCH]) if case.get(DISPATCH) is not None else case
        timeline.extend(dispatch.get("timeline", []))
        if not doc.get("legs") and dispatch.get("legs"):
            doc["legs"] = dispatch["legs"]
        if not doc.get("departments") and case.get("departments"):
            doc["departments"] = case["departments"]
    seen: set[str] = set()
    unique: list[Document] = []
    for entry in timeline:
        if entry["event_id"] not in seen:
            seen.add(entry["event_id"])
            unique.append(entry)
    unique.sort(key=lambda e: e["at"])
    doc["timeline"] = unique
    setting = [e for e in unique if e.get("sets_status", True)]
    if setting:
        doc["status"] = setting[-1]["status"]
        doc["updated_at"] = max(e["at"] for e in unique)
    return doc


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
    set_on_insert: Document | None = None,
    set_status: bool = True,
) -> tuple[Document, Document]:
    """The filter and update of one first-time transition, for a bulk write: the stage that
    plans it knows the event is new (its guard insert just succeeded), so no read is needed.
    ``set_on_insert`` (with an upsert) creates the record when the earlier stage's write has
    not landed yet; without ``set_status`` the entry is on the timeline only, as
    :func:`apply_transition` records it."""
    return transitions_write(
        request_id,
        [entry],
        set_fields=set_fields,
        set_on_insert=set_on_insert,
        set_status=set_status,
    )


def transitions_write(
    request_id: str,
    entries: list[Document],
    *,
    set_fields: Document,
    set_on_insert: Document | None = None,
    set_status: bool = True,
) -> tuple[Document, Document]:
    """:func:`transition_write` for several transitions at once; the last one sets the status
    (unless ``set_status`` is False)."""
    status = {"status": entries[-1]["status"]} if set_status else {}
    if not set_status:
        entries = [{**e, "sets_status": False} for e in entries]
    update_set: Document = {"updated_at": entries[-1]["at"], **status, **set_fields}
    update: Document = {
        "$set": update_set,
        "$push": {"timeline": {"$each": entries}},
        "$addToSet": {"applied_events": {"$each": [e["event_id"] for e in entries]}},
    }
    on_insert = {
        key: value
        for key, value in (set_on_insert or {}).items()
        if key not in update_set and key not in ("_id", "timeline", "applied_events")
    }
    if on_insert:
        update["$setOnInsert"] = on_insert
    return {"_id": request_id}, update


def submission_document(submitted: SubmittedRequest, *, event_id: str) -> Document:
    """The request record as first accepted: the initial fields, the timeline's first entry
    and the applied event. Verify keeps it in its decision (``SUBMISSION``), which stands in
    for the record if intake's write never landed."""
    entry = transition(
        event_id=event_id,
        status="submitted",
        at=submitted.submitted_at,
        actor=f"intake/{submitted.channel}",
    )
    return {
        **initial_document(submitted),
        "updated_at": entry["at"],
        "_id": submitted.request_id,
        "timeline": [entry],
        "applied_events": [event_id],
    }


async def scan(db: Database, fields: Sequence[str]) -> list[Document]:
    """Every request, merged (:func:`merged`), with only ``fields`` of the record and what the
    status needs: a whole-collection read of the three collections, for rare summaries. A
    decided request whose record is missing is there too, whole, from its decision's copy."""
    wanted = {"_id": 1, "timeline.event_id": 1, "timeline.status": 1, "timeline.at": 1}
    wanted.update({"timeline.sets_status": 1, **projection(*fields)})
    records = [doc async for doc in db[COLLECTION].find({}, wanted)]
    return await merge_all(db, records) + await _without_record(db, {d["_id"] for d in records})


async def _without_record(db: Database, stored: set[Any]) -> list[Document]:
    """The decided requests whose record is missing (intake's write lost), each merged from
    its decision's copy: one more pass over the decisions' ids, then a read per such request."""
    missing = [d["_id"] async for d in db[DECISIONS].find({}, {"_id": 1}) if d["_id"] not in stored]
    found = [await get_request(db, str(request_id)) for request_id in missing]
    return [doc for doc in found if doc is not None]


async def merge_all(db: Database, records: Sequence[Document]) -> list[Document]:
    """:func:`merged` for many records at once: the decisions and cases are read in one pass
    each (a scan: lookups by a list of ids scan as well on FerretDB), for rare queries only."""
    if not records:
        return []
    decisions = {
        doc["_id"]: doc async for doc in db[DECISIONS].find({}, {"fields.district": 1, "entry": 1})
    }
    wanted = dict.fromkeys((DISPATCH, "timeline", "legs", "departments"), 1)
    cases = {doc["_id"]: doc async for doc in db[CASES].find({}, wanted)}
    return [merged(doc, decisions.get(doc["_id"]), cases.get(doc["_id"])) for doc in records]
