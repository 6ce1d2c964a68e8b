"""The events a decision publishes: verified (on the lane its urgency picks), review and
rejected. Each carries the normalised facts (E.164 phone, district code), so no later stage
reads the citizen's raw text again."""

from __future__ import annotations

from datetime import datetime

from services.verify.domain.decision import Decision
from shared.schemas import (
    Category,
    Location,
    NormalisedContact,
    NormalisedLocation,
    RejectedRequest,
    ReviewRequest,
    SubmittedRequest,
    VerifiedRequest,
)
from shared.topics import Topic
from shared.triage import URGENT_PRIORITIES


def contact_of(submitted: SubmittedRequest, decision: Decision) -> NormalisedContact | None:
    """The contact to tell the citizen through; None when the phone is unusable."""
    if decision.phone is None:
        return None
    return NormalisedContact(name=submitted.request.contact.name, phone=decision.phone)


def verified_event(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    at: datetime,
    verified_by: str = "verify",
    category: Category | None = None,
) -> VerifiedRequest:
    req = submitted.request
    location = req.location or Location()
    if decision.phone is None:
        raise ValueError("a verified request needs a valid phone")
    return VerifiedRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        verified_at=at,
        channel=submitted.channel,
        category=category or req.category,
        description=req.description,
        contact=NormalisedContact(name=req.contact.name, phone=decision.phone),
        location=NormalisedLocation(
            district=decision.district,
            address=location.address,
            lat=location.lat,
            lon=location.lon,
        ),
        special_groups=list(decision.special_groups),
        language=req.language,
        priority=decision.priority,
        green_channel=decision.green_channel,
        reasons=list(decision.reasons),
        verified_by=verified_by,
    )


def verified_lane(decision: Decision) -> Topic:
    """The topic a verified request goes on: urgent ones (P1, P2 or green channel) take the
    priority lane, so route never dispatches them behind a backlog of ordinary requests."""
    if decision.green_channel or decision.priority in URGENT_PRIORITIES:
        return Topic.VERIFIED_PRIORITY
    return Topic.VERIFIED


def review_event(submitted: SubmittedRequest, decision: Decision, *, at: datetime) -> ReviewRequest:
    return ReviewRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        flagged_at=at,
        category=submitted.request.category,
        priority=decision.priority,
        green_channel=decision.green_channel,
        reasons=decision.all_reasons,
        language=submitted.request.language,
        contact=contact_of(submitted, decision),
    )


def rejected_event(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    at: datetime,
    rejected_by: str = "verify",
) -> RejectedRequest:
    return RejectedRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        rejected_at=at,
        reasons=list(decision.problems),
        duplicate_of=decision.duplicate_of,
        language=submitted.request.language,
        rejected_by=rejected_by,
        contact=contact_of(submitted, decision),
    )
