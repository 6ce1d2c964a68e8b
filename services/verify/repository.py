"""Verify's storage: the outcome of each check on the request record."""

from __future__ import annotations

from datetime import datetime

from services.verify.domain import Decision
from shared import requests_store
from shared.db import Database
from shared.schemas import SubmittedRequest


class VerifyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await requests_store.ensure_indexes(self.db)

    async def record_decision(
        self, submitted: SubmittedRequest, decision: Decision, *, event_id: str, at: datetime
    ) -> bool:
        """Store the decision once; creates the request record if intake's write is missing."""
        return await requests_store.apply_transition(
            self.db,
            submitted.request_id,
            requests_store.transition(
                event_id=event_id,
                status=decision.outcome,
                at=at,
                actor="verify",
                reason=",".join(decision.reasons),
            ),
            set_fields={
                "priority": decision.priority,
                "green_channel": decision.green_channel,
                "reasons": decision.reasons,
                "phone_normalised": decision.phone,
                "district": decision.district,
            },
            set_on_insert=requests_store.initial_document(submitted),
        )
