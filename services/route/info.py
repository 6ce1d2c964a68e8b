"""What a citizen adds after a department reported ``needs_info``: it goes to the leg that
asked, as an :class:`~shared.schemas.InfoAdded` event on that department's dispatch topic
(``ce_type`` ``city.help.leg.info_added.v1``), and onto the request's timeline.

The citizen proves the request is theirs with the tracking token (as for the full status
view). The event id is derived from the question and the text, so a retried addition is one
event; a new text is a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from services.route.handlers import RouteContext
from shared import requests_store
from shared.kafka import effect_id
from shared.metrics import INFO_REQUESTS
from shared.schemas import InfoAdded
from shared.topics import dispatch_topic

logger = logging.getLogger(__name__)

INFO_ADDED = "info_added"


@dataclass(frozen=True, slots=True)
class Refusal:
    http_status: int
    code: str
    message: str


def token_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Whether the tracking token's SHA-256 is the one intake stored for the request."""
    if not presented or not stored_hash:
        return False
    digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()
    return hmac.compare_digest(digest, stored_hash)


async def add_info(
    ctx: RouteContext, request_id: str, *, token: str | None, text: str, at: datetime
) -> InfoAdded | Refusal:
    """Check the token, find the leg that asked and send it the addition."""
    stored = await ctx.repo.db[requests_store.COLLECTION].find_one(
        {"_id": request_id}, requests_store.projection("tracking_token_hash")
    )
    if stored is None:
        return Refusal(404, "not_found", "No request with this id.")
    if not token:
        return Refusal(401, "token_required", "Send the tracking token (X-Tracking-Token).")
    if not token_matches(token, requests_store.record(stored).get("tracking_token_hash")):
        return Refusal(403, "wrong_token", "The tracking token does not match this request.")
    asked = await ctx.repo.info_request(request_id)
    if asked is None:
        return Refusal(409, "nothing_asked", "No department has asked for more information.")
    text_digest = hashlib.sha256(text.encode()).hexdigest()
    event_id = effect_id("info-added", str(asked["asked_event_id"]), text_digest)
    added = InfoAdded(
        event_id=event_id,
        request_id=request_id,
        leg_id=str(asked["leg_id"]),
        department=asked["department"],
        team_id=str(asked["team_id"]),
        asked_event_id=str(asked["asked_event_id"]),
        text=text,
        added_at=at,
    )
    await ctx.bus.emit(
        dispatch_topic(added.department),
        added,
        key=request_id,
        name="leg.info_added",
        event_id=event_id,
    )
    applied = await ctx.repo.record_transition(
        request_id,
        event_id=event_id,
        status=INFO_ADDED,
        at=at,
        actor="citizen",
        reason=INFO_ADDED,
        detail={"department": added.department, "leg_id": added.leg_id},
        set_status=False,
    )
    if applied:
        INFO_REQUESTS.labels("added", added.department).inc()
    logger.info(
        "information added by the citizen",
        extra={"request_id": request_id, "leg_id": added.leg_id, "department": added.department},
    )
    return added
