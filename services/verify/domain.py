"""Verification rules: pure functions from a submitted request to a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.schemas import (
    NormalisedContact,
    NormalisedLocation,
    Priority,
    SubmittedRequest,
    VerifiedRequest,
)

GREEN_CHANNEL_GROUPS = frozenset(
    {"pregnant", "elderly", "child", "disabled", "chronic_illness", "living_alone"}
)
_BASE_PRIORITY: dict[str, Priority] = {
    "medical": "P3",
    "food_supply": "P3",
    "transport": "P3",
    "health_code": "P3",
    "education": "P3",
    "epidemic_policy": "P4",
    "suggestion": "P4",
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str  # "verified" | "needs_review" | "rejected"
    priority: Priority
    green_channel: bool
    phone: str
    district: str | None
    reasons: list[str] = field(default_factory=list)


def normalise_phone(raw: str) -> str:
    """Digits only, full-width digits folded, with a +86 prefix for Chinese numbers."""
    digits = "".join(str(int(c)) for c in raw if c.isdigit())
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return f"+86{digits.lstrip('0')}" if digits.startswith("0") else f"+86{digits}"


def decide(submitted: SubmittedRequest) -> Decision:
    """Check and triage one request."""
    req = submitted.request
    green = bool(GREEN_CHANNEL_GROUPS.intersection(req.special_groups))
    priority = _BASE_PRIORITY[req.category]
    reasons = [f"category:{req.category}"]
    if green and priority in ("P3", "P4") and req.category != "suggestion":
        priority = "P2"
        reasons.append("special_group")
    district = (req.location.district or None) if req.location else None
    return Decision(
        "verified",
        priority,
        green,
        normalise_phone(req.contact.phone),
        district.lower() if district else None,
        reasons,
    )


def verified_event(
    submitted: SubmittedRequest, decision: Decision, *, at: datetime
) -> VerifiedRequest:
    req = submitted.request
    location = req.location
    return VerifiedRequest(
        request_id=submitted.request_id,
        submitted_at=submitted.submitted_at,
        verified_at=at,
        channel=submitted.channel,
        category=req.category,
        description=req.description,
        contact=NormalisedContact(name=req.contact.name, phone=decision.phone),
        location=NormalisedLocation(
            district=decision.district,
            address=location.address if location else None,
            lat=location.lat if location else None,
            lon=location.lon if location else None,
        ),
        special_groups=list(req.special_groups),
        language=req.language,
        priority=decision.priority,
        green_channel=decision.green_channel,
        reasons=decision.reasons,
    )
