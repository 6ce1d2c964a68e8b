"""Route's storage. Every hot-path read and write goes by ``_id`` (FerretDB answers only those
from its primary key); the periodic scans read small collections (teams, the due timers).

Collections:
- ``legs``: one document per dispatch leg (``_id`` = leg id): the job, its team, its state,
  its history of status events, the service-level deadlines and breach flags;
- ``leg_lookup``: ``_id`` = ``"<request id>|<department>"`` → the department's current leg, for
  status events that do not echo a leg id, written once a leg replaced the department's first
  one (whose id derives from the request and department: the fallback when there is none);
- ``route_cases``: ``_id`` = request id → its leg ids, the current cycle (a reopened request
  starts a new one) and the request-level statuses already announced; its first dispatch's
  transitions and leg summary, which the request's readers merge in (shared/requests_store);
- ``sla_timers_<YYYYMMDDHHMM>`` (and ``…<YYYYMMDDHH>``, ``…<YYYYMMDD>`` for deadlines hours or
  days ahead): the timers, in collections named by due time, each ``_id`` = leg id → when the
  leg's next deadline falls due; ``sla_timers`` holds those already overdue when written. Only
  open legs have one, and the deadline scan reads only the minutes begun
  (services/route/timer_store.py);
- ``sla_claims``: ``_id`` = ``"<leg>|<kind>|<generation>"`` → which route process escalates a
  due deadline (services/route/handlers/timers.py), and ``"<leg>|<kind>|done"`` once it is settled;
- ``teams``: the team directory with each team's open-leg counter;
- ``requests``: the shared request record (transitions and the ``legs`` summary).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.route import domain
from services.route.models import Case, Leg
from services.route.teams import Directory
from services.route.timer_store import TimerStore
from shared import requests_store
from shared.db import Database, Document

LEGS = "legs"
LOOKUP = "leg_lookup"
# Also the first dispatch of a request as its readers see it (shared/requests_store.py).
CASES = requests_store.CASES
CLAIMS = "sla_claims"
TEAMS = "teams"
# ``_id`` = request id → the leg whose department last asked the citizen for information.
INFO_REQUESTS = "info_requests"


class RouteRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.timers = TimerStore(db)

    # ------------------------------------------------------------------------------ teams

    async def sync_teams(self, directory: Directory) -> None:
        """Upsert the directory by team id; open-leg counters are kept across restarts."""
        for team in directory.teams:
            await self.db[TEAMS].update_one(
                {"_id": team.id},
                {
                    "$set": {
                        "department": team.department,
                        "district": team.district,
                        "capacity": team.capacity,
                        "fallback": team.fallback,
                        "directory_version": directory.version,
                    },
                    "$setOnInsert": {"open_legs": 0},
                },
                upsert=True,
            )

    async def team_load(self) -> dict[str, int]:
        """Open legs per team (a small collection, read whole)."""
        return {
            str(doc["_id"]): int(doc.get("open_legs", 0))
            async for doc in self.db[TEAMS].find({}, {"open_legs": 1})
        }

    async def count_leg(self, leg: Leg) -> Leg:
        """Add the leg to its team's open legs, once."""
        if leg.counted:
            return leg
        await self.db[TEAMS].update_one({"_id": leg.team_id}, {"$inc": {"open_legs": 1}})
        await self.db[LEGS].update_one({"_id": leg.leg_id}, {"$set": {"counted": True}})
        return leg.changed(counted=True)

    async def release_leg(self, leg: Leg) -> Leg:
        """Take a finished leg off its team's open legs, once."""
        if not leg.counted or leg.released:
            return leg
        await self.db[TEAMS].update_one({"_id": leg.team_id}, {"$inc": {"open_legs": -1}})
        await self.db[LEGS].update_one({"_id": leg.leg_id}, {"$set": {"released": True}})
        return leg.changed(released=True)

    # ------------------------------------------------------------------------------ legs

    async def get_leg(self, leg_id: str) -> Leg | None:
        doc = await self.db[LEGS].find_one({"_id": leg_id})
        return None if doc is None else Leg.from_document(doc)

    async def create_leg(self, leg: Leg) -> Leg:
        """Store a new leg once; returns the stored leg (the first one, on a redelivery)."""
        try:
            await self.db[LEGS].insert_one(leg.to_document())
        except DuplicateKeyError:
            existing = await self.get_leg(leg.leg_id)
            if existing is not None:
                return existing
        return leg.changed(created_now=True)  # this processing stored it, nothing went out

    async def mark_published(self, leg: Leg, at: datetime) -> Leg:
        await self.db[LEGS].update_one(
            {"_id": leg.leg_id},
            {"$set": {"published": True, "dispatched_at": at}},
        )
        return leg.changed(published=True, dispatched_at=at)

    async def set_progress(
        self, leg: Leg, *, status: str, occurred_at: datetime, event_id: str
    ) -> Leg:
        """Move the leg to ``status`` (the event id is marked applied later, after effects)."""
        fields = {
            "progress": status,
            "status": status,
            "last_occurred_at": occurred_at,
            "last_event_id": event_id,
        }
        await self.db[LEGS].update_one({"_id": leg.leg_id}, {"$set": fields})
        return leg.changed(
            progress=status, status=status, last_occurred_at=occurred_at, last_event_id=event_id
        )

    async def record_event(self, leg_id: str, *, event_id: str, entry: Document) -> None:
        """The status event is done with: keep it in the history, never apply it again."""
        await self.db[LEGS].update_one(
            {"_id": leg_id},
            {"$push": {"history": entry}, "$addToSet": {"applied_events": event_id}},
        )

    async def supersede(self, leg: Leg, *, by: str, rejected_by: Sequence[str]) -> Leg:
        fields = {"current": False, "superseded_by": by}
        await self.db[LEGS].update_one({"_id": leg.leg_id}, {"$set": fields})
        await self.db[LEGS].update_one(
            {"_id": by}, {"$addToSet": {"rejected_by": {"$each": list(rejected_by)}}}
        )
        return leg.changed(current=False, superseded_by=by)

    async def hand_over(self, leg: Leg, *, by: str) -> Leg:
        """A command leg (or the work leg it watched) re-dispatched: ``by`` owns the job now."""
        fields = {"current": False, "superseded_by": by, "status": "redispatched"}
        await self.db[LEGS].update_one({"_id": leg.leg_id}, {"$set": fields})
        return leg.changed(current=False, superseded_by=by, status="redispatched")

    async def command_legs(self) -> list[Leg]:
        """The command centre's current legs (a scan of the legs, for its rare page loads)."""
        return await self.department_legs("command")

    async def department_legs(self, department: str) -> list[Leg]:
        """A department's current legs (a scan, for its board)."""
        return [
            Leg.from_document(doc)
            async for doc in self.db[LEGS].find({"department": department, "current": True})
        ]

    async def all_legs(self, fields: Sequence[str]) -> list[Document]:
        """Every leg with only ``fields`` (a scan, for the command centre's charts)."""
        return [doc async for doc in self.db[LEGS].find({}, dict.fromkeys(fields, 1))]

    async def mark_breached(self, leg: Leg, kind: str) -> bool:
        """Flag a breach on the leg; False when it was flagged already."""
        result = await self.db[LEGS].find_one_and_update(
            {"_id": leg.leg_id},
            {"$addToSet": {"breached": kind}, "$set": {"status": "escalated"}},
            return_document=ReturnDocument.BEFORE,
        )
        return result is not None and kind not in result.get("breached", [])

    # ------------------------------------------------------------------------------ lookup

    async def set_lookup(self, request_id: str, *, department: str, leg_id: str) -> None:
        await self.db[LOOKUP].update_one(
            {"_id": f"{request_id}|{department}"},
            {"$set": {"leg_id": leg_id, "request_id": request_id}},
            upsert=True,
        )

    async def lookup(self, request_id: str, *, department: str) -> str | None:
        """The leg that replaced the department's first one, if any (see the module's text)."""
        doc = await self.db[LOOKUP].find_one({"_id": f"{request_id}|{department}"})
        return None if doc is None else str(doc["leg_id"])

    async def has_current_leg(self, request_id: str, *, department: str) -> bool:
        """Whether status reports by request and department find a leg: a lookup document, or
        the department's first leg (its id derived from the request and department)."""
        if await self.lookup(request_id, department=department) is not None:
            return True
        first = await self.db[LEGS].find_one({"_id": domain.leg_id(request_id, department)})
        return first is not None

    # ------------------------------------------------------------------------------ cases

    async def add_to_case(self, request_id: str, *, leg_id: str) -> None:
        await self.db[CASES].update_one(
            {"_id": request_id},
            {
                "$addToSet": {"leg_ids": leg_id},
                "$setOnInsert": {"cycle": 0, "emitted": [], "reopens": []},
            },
            upsert=True,
        )

    async def get_case(self, request_id: str) -> Case | None:
        doc = await self.db[CASES].find_one({"_id": request_id})
        return None if doc is None else Case.from_document(doc)

    async def case_legs(self, case: Case) -> list[Leg]:
        legs = []
        for leg_id in case.leg_ids:
            leg = await self.get_leg(leg_id)
            if leg is not None:
                legs.append(leg)
        return legs

    async def mark_emitted(self, request_id: str, *, key: str) -> None:
        await self.db[CASES].update_one({"_id": request_id}, {"$addToSet": {"emitted": key}})

    async def mark_handled(self, request_id: str, *, event_id: str) -> None:
        """A reopen or close event is done with (its effects are all stored)."""
        await self.db[CASES].update_one({"_id": request_id}, {"$addToSet": {"handled": event_id}})

    async def start_cycle(self, request_id: str, *, reopen_event_id: str) -> int:
        """The cycle a reopening starts (the same one when the reopening is redelivered)."""
        await self.db[CASES].update_one(
            {"_id": request_id}, {"$addToSet": {"reopens": reopen_event_id}}
        )
        case = await self.get_case(request_id)
        reopens = list(case.reopens) if case else []
        cycle = reopens.index(reopen_event_id) + 1
        await self.db[CASES].update_one({"_id": request_id}, {"$max": {"cycle": cycle}})
        return cycle

    # ------------------------------------------------------------------------------ claims

    async def claim_breach(
        self, leg_id: str, kind: str, *, now: datetime, lease: timedelta, owner: str
    ) -> int | None:
        """The generation this process now holds for a due deadline, or None when another
        holds it. Every claim is an insert keyed by the deadline and its generation: of two
        processes, one wins. A claim older than the lease is taken over by the next one."""
        generation = 1
        while True:
            claim = {"_id": f"{leg_id}|{kind}|{generation}", "claimed_at": now, "owner": owner}
            try:
                await self.db[CLAIMS].insert_one(claim)
                return generation
            except DuplicateKeyError:
                pass
            held = await self.db[CLAIMS].find_one({"_id": f"{leg_id}|{kind}|{generation + 1}"})
            if held is not None:
                generation += 1
                continue
            current = await self.db[CLAIMS].find_one({"_id": claim["_id"]})
            if current is None or _aware(current["claimed_at"]) + lease > now:
                return None
            generation += 1

    async def breach_superseded(self, leg_id: str, kind: str, generation: int) -> bool:
        """Whether a later generation took this deadline over (the fencing check)."""
        later = await self.db[CLAIMS].find_one({"_id": f"{leg_id}|{kind}|{generation + 1}"})
        return later is not None

    async def first_claim_at(self, leg_id: str, kind: str) -> datetime | None:
        first = await self.db[CLAIMS].find_one({"_id": f"{leg_id}|{kind}|1"})
        return _aware(first["claimed_at"]) if first else None

    async def settle_breach(self, leg_id: str, kind: str, *, token: int, at: datetime) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.db[CLAIMS].insert_one(
                {"_id": f"{leg_id}|{kind}|done", "generation": token, "settled_at": at}
            )

    async def breach_settled(self, leg_id: str, kind: str) -> bool:
        return await self.db[CLAIMS].find_one({"_id": f"{leg_id}|{kind}|done"}) is not None

    # ------------------------------------------------------------------------------ request

    async def record_transition(
        self,
        request_id: str,
        *,
        event_id: str,
        status: str,
        at: datetime,
        actor: str = "route",
        reason: str | None = None,
        detail: Document | None = None,
        set_status: bool = True,
        set_fields: Document | None = None,
    ) -> bool:
        return await requests_store.apply_transition(
            self.db,
            request_id,
            requests_store.transition(
                event_id=event_id, status=status, at=at, actor=actor, reason=reason, detail=detail
            ),
            set_status=set_status,
            set_fields=set_fields,
        )

    async def set_summary(
        self, request_id: str, legs: Sequence[Document], departments: Sequence[str]
    ) -> None:
        await self.db[requests_store.COLLECTION].update_one(
            {"_id": request_id}, {"$set": {"legs": list(legs), "departments": list(departments)}}
        )

    # ------------------------------------------------------------------------------ needs_info

    async def ask_info(self, request_id: str, fields: Document) -> None:
        await self.db[INFO_REQUESTS].update_one({"_id": request_id}, {"$set": fields}, upsert=True)

    async def info_request(self, request_id: str) -> Document | None:
        return await self.db[INFO_REQUESTS].find_one({"_id": request_id})


def _aware(at: datetime) -> datetime:
    """Stored times come back naive (UTC) unless the client is tz-aware."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
