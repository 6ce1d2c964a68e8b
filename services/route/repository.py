"""Route's storage: one document per dispatch leg, plus transitions on the request record."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from shared import requests_store
from shared.db import Database, Document
from shared.schemas import DispatchJob

LEGS = "legs"


class RouteRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await requests_store.ensure_indexes(self.db)
        await self.db[LEGS].create_index("request_id")

    async def create_leg(self, job: DispatchJob) -> Document:
        """Store the leg once; returns the stored leg (the first one, on a redelivery)."""
        doc: Document = {
            "_id": job.leg_id,
            "request_id": job.request_id,
            "department": job.department,
            "team_id": job.team_id,
            "status": "planned",
            "published": False,
            "job": job.model_dump(mode="json"),
            "acknowledge_by": job.acknowledge_by,
            "resolve_by": job.resolve_by,
        }
        try:
            await self.db[LEGS].insert_one(doc)
        except DuplicateKeyError:
            existing = await self.db[LEGS].find_one({"_id": job.leg_id})
            if existing is not None:
                return existing
        return doc

    async def mark_published(self, leg_id: str, at: datetime) -> None:
        await self.db[LEGS].update_one(
            {"_id": leg_id},
            {"$set": {"published": True, "status": "dispatched", "dispatched_at": at}},
        )

    async def record_dispatched(
        self, job: DispatchJob, *, event_id: str, departments: Sequence[str]
    ) -> bool:
        return await requests_store.apply_transition(
            self.db,
            job.request_id,
            requests_store.transition(
                event_id=event_id,
                status="dispatched",
                at=job.dispatched_at,
                actor="route",
                reason=job.rule_id,
                detail={"department": job.department, "team_id": job.team_id, "leg_id": job.leg_id},
            ),
            set_fields={"departments": list(departments)},
        )
