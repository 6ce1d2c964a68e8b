"""Intake's handlers: turn a validated submission into a durable event and a receipt."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.intake import domain
from services.intake.repository import IntakeRepository
from services.intake.settings import IntakeSettings
from shared.envelope import utcnow
from shared.kafka import EventBus, effect_id
from shared.metrics import REQUESTS
from shared.schemas import Channel, HelpRequest, SubmittedRequest
from shared.topics import Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    request_id: str
    tracking_token: str
    status: str
    replayed: bool = False


async def submit(
    request: HelpRequest,
    *,
    channel: Channel,
    client: str,
    idempotency_key: str | None,
    bus: EventBus,
    repo: IntakeRepository,
    settings: IntakeSettings,
    partner_id: str | None = None,
    external_id: str | None = None,
) -> Receipt:
    """Accept a request: publish it (acks=all) before answering; a retry returns the original."""
    request_id = domain.request_id_for(client=client, idempotency_key=idempotency_key)
    token = domain.tracking_token(settings.tracking_secret, request_id)
    if idempotency_key:
        existing = await repo.get(request_id)
        if existing is not None:
            return Receipt(
                request_id, token, str(existing.get("status", "submitted")), replayed=True
            )
    submitted = SubmittedRequest(
        request_id=request_id,
        submitted_at=utcnow(),
        channel=channel,
        client_id=client,
        partner_id=partner_id,
        external_id=external_id,
        tracking_token_hash=domain.token_hash(token),
        request=request,
    )
    event_id = effect_id("submitted", request_id)
    await bus.emit(
        Topic.SUBMITTED, submitted, key=request_id, name="request.submitted", event_id=event_id
    )
    REQUESTS.labels("received", request.category, "", "unverified").inc()
    try:
        await repo.record_submitted(submitted, event_id=event_id)
    except Exception as exc:
        # The request is durably in Kafka; verify creates the record if this write is missing.
        logger.warning(
            "could not store the submission record: %s",
            type(exc).__name__,
            extra={"request_id": request_id},
        )
    logger.info(
        "request accepted",
        extra={"request_id": request_id, "channel": channel, "category": request.category},
    )
    return Receipt(request_id, token, "submitted")
