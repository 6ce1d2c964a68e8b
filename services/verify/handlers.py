"""Verify's handlers: parse, decide, store, publish — for the automatic path (records from the
submitted topics) and for a human verifier's decision on the review queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.verify import domain
from services.verify.domain import Config, Decision
from services.verify.repository import VerifyRepository, decision_from
from shared.envelope import Envelope, utcnow
from shared.faults import crash_point
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS, REQUESTS
from shared.schemas import Category, SubmittedRequest
from shared.stage import Record
from shared.topics import Topic

logger = logging.getLogger(__name__)

ReviewDecisionKind = Literal["verify", "reject", "duplicate"]


async def handle_submitted(
    record: Record, *, bus: EventBus, repo: VerifyRepository, config: Config
) -> None:
    """Check and triage one submitted request, store the outcome, publish it."""
    submitted = record.parse(SubmittedRequest)
    event_id = effect_id("verify", submitted.request_id)
    stored = await repo.prior_decision(submitted.request_id, event_id)
    if stored is not None:
        # A redelivery: the decision was stored; finish any effect a crash may have cut short
        # and publish again with the same event id (consumers skip repeats).
        decision, at = decision_from(stored)
        await _side_effects(submitted, decision, repo=repo, at=at)
        await publish(submitted, decision, bus=bus, event_id=event_id, at=at, cause=record.envelope)
        return

    now = _now()
    phone = domain.normalise_phone(submitted.request.contact.phone, config.jurisdiction)
    history = (
        await repo.history(phone.e164, submitted.request.category)
        if phone.e164
        else domain.History()
    )
    decision = domain.decide(submitted, config, history)
    if decision.phone is not None:
        await repo.remember(
            history,
            phone=decision.phone,
            category=submitted.request.category,
            entry=domain.HistoryEntry(
                submitted.request_id,
                submitted.submitted_at,
                domain.normalise_description(submitted.request.description),
            ),
            for_duplicates=domain.remembered_for_duplicates(decision),
            limit=config.rules.history_limit,
        )
        crash_point("verify.after_remember")
    await _side_effects(submitted, decision, repo=repo, at=now)
    await repo.record_decision(submitted, decision, event_id=event_id, at=now, actor="verify")
    crash_point("verify.after_store")
    await publish(submitted, decision, bus=bus, event_id=event_id, at=now, cause=record.envelope)
    crash_point("verify.after_publish")
    REQUESTS.labels(
        decision.outcome,
        submitted.request.category,
        decision.priority,
        decision.district or "unknown",
    ).inc()
    END_TO_END_SECONDS.labels("verify").observe((now - submitted.submitted_at).total_seconds())
    logger.info(
        "request %s",
        decision.outcome,
        extra={
            "request_id": submitted.request_id,
            "priority": decision.priority,
            "reasons": list(decision.problems),
        },
    )


async def _side_effects(
    submitted: SubmittedRequest, decision: Decision, *, repo: VerifyRepository, at: datetime
) -> None:
    """The writes besides the request record; each is idempotent."""
    if decision.outcome == "duplicate" and decision.duplicate_of:
        await repo.absorb_duplicate(decision.duplicate_of, submitted.request_id)
    elif decision.outcome == "needs_review":
        await repo.open_review(submitted, decision, at=at)


async def publish(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    bus: EventBus,
    event_id: str,
    at: datetime,
    cause: Envelope | None,
    actor: str = "verify",
    category: Category | None = None,
) -> None:
    """The event of an outcome on its topic, keyed by the request id."""
    key = submitted.request_id
    if decision.outcome == "verified":
        verified = domain.verified_event(
            submitted, decision, at=at, verified_by=actor, category=category
        )
        await bus.emit(
            Topic.VERIFIED,
            verified,
            key=key,
            name="request.verified",
            event_id=event_id,
            cause=cause,
        )
    elif decision.outcome == "needs_review":
        review = domain.review_event(submitted, decision, at=at)
        await bus.emit(
            Topic.REVIEW,
            review,
            key=key,
            name="request.needs_review",
            event_id=event_id,
            cause=cause,
        )
    else:
        rejected = domain.rejected_event(submitted, decision, at=at, rejected_by=actor)
        name = "request.duplicate" if decision.outcome == "duplicate" else "request.rejected"
        await bus.emit(Topic.REJECTED, rejected, key=key, name=name, event_id=event_id, cause=cause)


# --------------------------------------------------------------------------- human review


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    ok: bool
    error: str = ""
    message: str = ""
    status: str = ""
    event_id: str = ""


async def decide_review(
    request_id: str,
    *,
    verifier: str,
    kind: ReviewDecisionKind,
    corrections: domain.Corrections,
    reason: str | None,
    duplicate_of: str | None,
    bus: EventBus,
    repo: VerifyRepository,
    config: Config,
) -> ReviewOutcome:
    """A verifier's decision on a claimed review: store it with who and when, then publish
    the same event the automatic path would have."""
    now = _now()
    review = await repo.get_review(request_id)
    if review is None:
        return ReviewOutcome(False, "not_found", "No review with this id.")
    if review.get("state") != "open":
        return ReviewOutcome(False, "already_decided", "This review was already decided.")
    claim = await repo.hold(request_id, verifier=verifier, now=now, ttl=config.rules.claim_ttl)
    if claim.outcome != "held":
        return ReviewOutcome(False, "not_claimed", "Claim the review before deciding it.")
    submitted = SubmittedRequest.model_validate(review["submitted"])
    automatic, _ = decision_from(review["verification"])
    actor = f"verifier:{verifier}"
    category: Category | None = None
    if kind == "verify":
        correction = domain.apply_corrections(submitted, automatic, corrections, config)
        if correction.problems:
            return ReviewOutcome(False, "invalid_correction", ", ".join(correction.problems))
        decision = correction.decision
        category = correction.category
    elif kind == "duplicate":
        if not duplicate_of or duplicate_of == request_id:
            return ReviewOutcome(False, "invalid_duplicate", "duplicate_of names another request.")
        if not await repo.request_exists(duplicate_of):
            return ReviewOutcome(False, "invalid_duplicate", "duplicate_of is not a request.")
        decision = _replace(automatic, "duplicate", ("duplicate",), duplicate_of)
    else:
        # The reason code tells the citizen; the verifier's note stays on the timeline.
        decision = _replace(automatic, "rejected", ("rejected_by_verifier",), None)
    event_id = effect_id("verify-review", request_id, decision.outcome)
    await _side_effects(submitted, decision, repo=repo, at=now)
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
    await publish(
        submitted,
        decision,
        bus=bus,
        event_id=event_id,
        at=now,
        cause=None,
        actor=actor,
        category=category,
    )
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


def _now() -> datetime:
    """Now, to the millisecond: what the database keeps, so a republished event is identical."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _replace(
    decision: Decision,
    outcome: domain.Outcome,
    problems: tuple[str, ...],
    duplicate_of: str | None,
) -> Decision:
    return Decision(
        outcome=outcome,
        priority=decision.priority,
        green_channel=decision.green_channel,
        phone=decision.phone,
        district=decision.district,
        special_groups=decision.special_groups,
        reasons=decision.reasons,
        problems=problems,
        duplicate_of=duplicate_of,
    )
