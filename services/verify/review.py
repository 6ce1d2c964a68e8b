"""A human verifier's decision on the review queue (and the call rule's, through
:func:`apply_review_decision`): stored with who and when, then the same event the automatic
path would have published (services/verify/handlers.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from services.verify import domain
from services.verify.domain import Config
from services.verify.handlers import VerifyContext, now_ms, outcome_event, side_effects
from services.verify.repository import VerifyRepository, decision_from
from shared.db import Document
from shared.kafka import EventBus, effect_id
from shared.metrics import REQUESTS
from shared.schemas import Category, SubmittedRequest

logger = logging.getLogger(__name__)

ReviewDecisionKind = Literal["verify", "reject", "duplicate"]


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    ok: bool
    error: str = ""
    message: str = ""
    status: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What is decided on a review: verify (with the corrections), reject (why) or duplicate
    (of which request)."""

    kind: ReviewDecisionKind
    corrections: domain.Corrections = field(default_factory=domain.Corrections)
    reason: str | None = None
    duplicate_of: str | None = None


async def decide_review(
    request_id: str, choice: ReviewDecision, *, verifier: str, ctx: VerifyContext
) -> ReviewOutcome:
    """A verifier's decision on a claimed review: store it with who and when, then publish
    the same event the automatic path would have."""
    now = now_ms(ctx.clock)
    repo = ctx.repo
    review = await repo.get_review(request_id)
    if review is None:
        return ReviewOutcome(False, "not_found", "No review with this id.")
    if review.get("state") != "open":
        return ReviewOutcome(False, "already_decided", "This review was already decided.")
    claim = await repo.hold(request_id, verifier=verifier, now=now, ttl=ctx.config.rules.claim_ttl)
    if claim.outcome != "held":
        return ReviewOutcome(False, "not_claimed", "Claim the review before deciding it.")
    if choice.kind == "reject" and not (choice.reason or "").strip():
        # The citizen is told it was refused; the record must say why, and who decided.
        return ReviewOutcome(False, "reason_required", "A rejection needs a reason.")
    return await apply_review_decision(
        review,
        choice,
        actor=f"verifier:{verifier}",
        bus=ctx.bus,
        repo=repo,
        config=ctx.config,
        at=now,
    )


async def apply_review_decision(
    review: Document,
    choice: ReviewDecision,
    *,
    actor: str,
    bus: EventBus,
    repo: VerifyRepository,
    config: Config,
    at: datetime,
    reject_code: str = "rejected_by_verifier",
) -> ReviewOutcome:
    """Decide an open review as ``actor`` (a verifier, or the call rule): store the decision,
    publish the outcome's event and close the review."""
    request_id = str(review["_id"])
    kind, reason, duplicate_of = choice.kind, choice.reason, choice.duplicate_of
    now = at
    verifier = actor.removeprefix("verifier:")
    submitted = SubmittedRequest.model_validate(review["submitted"])
    automatic, _ = decision_from(review["verification"])
    category: Category | None = None
    if kind == "verify":
        correction = domain.apply_corrections(submitted, automatic, choice.corrections, config)
        if correction.problems:
            return ReviewOutcome(False, "invalid_correction", ", ".join(correction.problems))
        decision = correction.decision
        category = correction.category
    elif kind == "duplicate":
        if not duplicate_of or duplicate_of == request_id:
            return ReviewOutcome(False, "invalid_duplicate", "duplicate_of names another request.")
        if not await repo.request_exists(duplicate_of):
            return ReviewOutcome(False, "invalid_duplicate", "duplicate_of is not a request.")
        decision = replace(
            automatic, outcome="duplicate", problems=("duplicate",), duplicate_of=duplicate_of
        )
    else:
        # The reason code tells the citizen; the verifier's note stays on the timeline.
        decision = replace(
            automatic, outcome="rejected", problems=(reject_code,), duplicate_of=None
        )
    event_id = effect_id("verify-review", request_id, decision.outcome)
    await side_effects(submitted, decision, repo=repo, at=now)
    await repo.record_decision(
        submitted,
        decision,
        event_id=event_id,
        at=now,
        actor=actor,
        reason=reason,
        category=category if category != submitted.request.category else None,
        store_as="review_decision",
    )
    event = outcome_event(
        submitted, decision, at=now, event_id=event_id, cause=None, actor=actor, category=category
    )
    await event.publish(bus)
    await repo.close_review(
        request_id,
        verifier=verifier,
        at=now,
        decision={
            "outcome": decision.outcome,
            "reason": reason,
            "duplicate_of": duplicate_of,
            "priority": decision.priority,
            "district": decision.district,
        },
    )
    REQUESTS.labels(
        decision.outcome,
        category or submitted.request.category,
        decision.priority,
        decision.district or "unknown",
    ).inc()
    logger.info(
        "review decided",
        extra={"request_id": request_id, "verifier": verifier, "outcome": decision.outcome},
    )
    return ReviewOutcome(True, status=decision.outcome, event_id=event_id)
