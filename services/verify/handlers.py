"""Verify's handlers: parse, decide, store, publish."""

from __future__ import annotations

import logging

from services.verify import domain
from services.verify.repository import VerifyRepository
from shared.envelope import utcnow
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS, REQUESTS
from shared.schemas import SubmittedRequest
from shared.stage import Record
from shared.topics import Topic

logger = logging.getLogger(__name__)


async def handle_submitted(record: Record, *, bus: EventBus, repo: VerifyRepository) -> None:
    submitted = record.parse(SubmittedRequest)
    decision = domain.decide(submitted)
    now = utcnow()
    event_id = effect_id("verify", submitted.request_id)
    await repo.record_decision(submitted, decision, event_id=event_id, at=now)
    # Published on every delivery, with the same event id: if a crash came between the write
    # and the publish, the redelivered record publishes what was missing; consumers skip repeats.
    verified = domain.verified_event(submitted, decision, at=now)
    await bus.emit(
        Topic.VERIFIED,
        verified,
        key=submitted.request_id,
        name="request.verified",
        event_id=event_id,
        cause=record.envelope,
    )
    REQUESTS.labels(
        "verified", verified.category, verified.priority, verified.location.district or "unknown"
    ).inc()
    END_TO_END_SECONDS.labels("verify").observe((now - submitted.submitted_at).total_seconds())
    logger.info(
        "request verified",
        extra={"request_id": submitted.request_id, "priority": decision.priority},
    )
