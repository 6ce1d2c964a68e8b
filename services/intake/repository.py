"""Intake's storage: the request record as first accepted."""

from __future__ import annotations

from shared import requests_store
from shared.db import Database, Document
from shared.schemas import SubmittedRequest


class IntakeRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await requests_store.ensure_indexes(self.db)

    async def get(self, request_id: str) -> Document | None:
        return await requests_store.get_request(self.db, request_id)

    async def record_submitted(self, submitted: SubmittedRequest, *, event_id: str) -> bool:
        return await requests_store.apply_transition(
            self.db,
            submitted.request_id,
            requests_store.transition(
                event_id=event_id,
                status="submitted",
                at=submitted.submitted_at,
                actor=f"intake/{submitted.channel}",
            ),
            set_on_insert=requests_store.initial_document(submitted),
            set_status=False,
        )
