"""Verify's handlers: parse, decide, store, publish — the automatic path (records from the
submitted topics); a human verifier's decision on the review queue is in review.py and
publishes through the same functions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from pydantic import BaseModel

from services.verify import domain, history
from services.verify.domain import Config, Decision
from services.verify.history import RecentHistory
from services.verify.repository import (
    DECISIONS,
    REVIEW,
    VerifyRepository,
    absorb_update,
    decision_from,
    decision_record,
    review_document,
)
from shared import requests_store
from shared.db import Document, unpack
from shared.envelope import Envelope, utcnow
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS, REQUESTS
from shared.plans import Event, Insert, Outcome, Plan, Update, Write, take_turns
from shared.schemas import Category, SubmittedRequest
from shared.stage import PermanentError, Record
from shared.topics import Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyContext:
    """What verify's handlers need, built once by ``build_app``."""

    bus: EventBus
    repo: VerifyRepository
    config: Config
    history: RecentHistory
    clock: Callable[[], datetime] = utcnow


async def plan_submitted(records: Sequence[Record], *, ctx: VerifyContext) -> list[Outcome]:
    """Decide a batch of submissions from memory. Each decision with a usable phone takes the
    phone's next history slot (one insert for the batch); a slot taken meanwhile by another
    process means memory missed a request of that phone: its entries are read and the request
    is decided again. Each plan is guarded by the insert of the decision, keyed by the request
    id; a request already decided (a redelivery, or a retry intake published twice) goes to
    :func:`finish_submitted`."""
    now = now_ms(ctx.clock)
    outcomes: list[Outcome] = [None] * len(records)
    waiting: list[tuple[int, SubmittedRequest]] = []
    for index, record in enumerate(records):
        await take_turns(index)
        try:
            waiting.append((index, record.parse(SubmittedRequest)))
        except PermanentError as exc:
            outcomes[index] = exc
    while waiting:
        later: list[tuple[int, SubmittedRequest]] = []
        claims: list[tuple[int, SubmittedRequest, Decision, Document]] = []
        phones: set[str] = set()
        for turn, (index, submitted) in enumerate(waiting):
            await take_turns(turn)
            decision = _decide(submitted, ctx)
            if decision.phone is None:
                outcomes[index] = decided(
                    submitted, decision, at=now, cause=records[index].envelope
                )
            elif decision.phone in phones:
                later.append((index, submitted))  # after this phone's earlier request
            else:
                phones.add(decision.phone)
                entry = _entry_document(submitted, decision, ctx.history.next_slot(decision.phone))
                claims.append((index, submitted, decision, entry))
        won = await ctx.repo.claim_history([entry for *_, entry in claims])
        for index, submitted, decision, entry in claims:
            if str(entry["_id"]) in won:
                ctx.history.load([entry])  # later records of this batch see this one
                outcomes[index] = decided(
                    submitted, decision, at=now, cause=records[index].envelope
                )
            else:
                assert decision.phone is not None
                missed = await ctx.repo.history_from(
                    decision.phone, ctx.history.next_slot(decision.phone)
                )
                ctx.history.load(missed)
                later.append((index, submitted))
        waiting = sorted(later)
    return outcomes


def _decide(submitted: SubmittedRequest, ctx: VerifyContext) -> Decision:
    """A decision from what this process knows of the phone's earlier requests."""
    phone = domain.normalise_phone(submitted.request.contact.phone, ctx.config.jurisdiction)
    category = submitted.request.category
    known = (
        ctx.history.of(phone.e164, category, excluding=submitted.request_id)
        if phone.e164
        else domain.History()
    )
    return domain.decide(submitted, ctx.config, known)


def _entry_document(submitted: SubmittedRequest, decision: Decision, slot: int) -> Document:
    assert decision.phone is not None
    return history.document(
        phone=decision.phone,
        category=submitted.request.category,
        entry=_history_entry(submitted),
        for_duplicates=domain.remembered_for_duplicates(decision),
        slot=slot,
    )


async def _remember(ctx: VerifyContext, submitted: SubmittedRequest, decision: Decision) -> None:
    """The careful path's history entry, unless the phone's sequence has it already."""
    phone = decision.phone
    if phone is None:
        return
    while True:
        ctx.history.load(await ctx.repo.history_from(phone, ctx.history.next_slot(phone)))
        if ctx.history.knows(phone, submitted.request_id):
            return
        entry = _entry_document(submitted, decision, ctx.history.next_slot(phone))
        if await ctx.repo.claim_history([entry]):
            ctx.history.load([entry])
            return


def decided(
    submitted: SubmittedRequest, decision: Decision, *, at: datetime, cause: Envelope | None
) -> Plan:
    """The plan of a first decision: the decision (the guard, carrying the request record in
    case intake's write is lost), the phone's history entry, the duplicate's count on its
    original or the review item, and the outcome's event."""
    request_id = submitted.request_id
    event_id = effect_id("verify", request_id)
    writes: list[Write] = []  # the history entry is in already (plan_submitted)
    if decision.outcome == "needs_review":
        writes.append(Insert(REVIEW, review_document(submitted, decision, at=at)))
    if decision.outcome == "duplicate" and decision.duplicate_of:
        writes.append(Update(DECISIONS, {"_id": decision.duplicate_of}, absorb_update(request_id)))
    return Plan(
        guards=(Insert(DECISIONS, decision_record(submitted, event_id, decision, at=at)),),
        writes=tuple(writes),
        events=(outcome_event(submitted, decision, at=at, event_id=event_id, cause=cause),),
        done=partial(_count, submitted, decision, at),
    )


async def finish_submitted(record: Record, *, ctx: VerifyContext) -> None:
    """A submission decided before: finish any effect a crash cut short, with the stored
    decision, and publish its event again with the same id (consumers skip repeats)."""
    submitted = record.parse(SubmittedRequest)
    event_id = effect_id("verify", submitted.request_id)
    stored = await ctx.repo.stored_decision(submitted.request_id)
    if stored is None:  # the guard's write was undone meanwhile: decide afresh, alone
        phone = decision_phone(submitted, ctx)
        if phone:  # the phone's latest entries first, as the batch path would
            ctx.history.load(await ctx.repo.history_from(phone, ctx.history.next_slot(phone)))
        decision, at = _decide(submitted, ctx), now_ms(ctx.clock)
        await ctx.repo.store_decision(submitted, event_id=event_id, decision=decision, at=at)
    else:
        decision, at = decision_from(unpack(stored[requests_store.DECISION]))
        if not stored.get(requests_store.SUBMISSION):
            # Stored before decisions carried the record: it may be all there is of it.
            await ctx.repo.ensure_record(submitted)
    await _remember(ctx, submitted, decision)
    await side_effects(submitted, decision, repo=ctx.repo, at=at)
    event = outcome_event(submitted, decision, at=at, event_id=event_id, cause=record.envelope)
    await event.publish(ctx.bus)


def decision_phone(submitted: SubmittedRequest, ctx: VerifyContext) -> str | None:
    return domain.normalise_phone(submitted.request.contact.phone, ctx.config.jurisdiction).e164


def _history_entry(submitted: SubmittedRequest) -> domain.HistoryEntry:
    return domain.HistoryEntry(
        submitted.request_id,
        submitted.submitted_at,
        domain.normalise_description(submitted.request.description),
    )


def _count(submitted: SubmittedRequest, decision: Decision, at: datetime) -> None:
    REQUESTS.labels(
        decision.outcome,
        submitted.request.category,
        decision.priority,
        decision.district or "unknown",
    ).inc()
    END_TO_END_SECONDS.labels("verify").observe((at - submitted.submitted_at).total_seconds())
    logger.info(
        "request %s",
        decision.outcome,
        extra={
            "request_id": submitted.request_id,
            "priority": decision.priority,
            "reasons": list(decision.problems),
        },
    )


async def side_effects(
    submitted: SubmittedRequest, decision: Decision, *, repo: VerifyRepository, at: datetime
) -> None:
    """The writes besides the request record; each is idempotent."""
    if decision.outcome == "duplicate" and decision.duplicate_of:
        await repo.absorb_duplicate(
            original_id=decision.duplicate_of, duplicate_id=submitted.request_id
        )
    elif decision.outcome == "needs_review":
        await repo.open_review(submitted, decision, at=at)


def outcome_event(
    submitted: SubmittedRequest,
    decision: Decision,
    *,
    at: datetime,
    event_id: str,
    cause: Envelope | None,
    actor: str = "verify",
    category: Category | None = None,
) -> Event:
    """The event of a decision's outcome, on its topic, keyed by the request id."""
    value: BaseModel
    if decision.outcome == "verified":
        value = domain.verified_event(
            submitted, decision, at=at, verified_by=actor, category=category
        )
        topic, name = domain.verified_lane(decision), "request.verified"
    elif decision.outcome == "needs_review":
        value = domain.review_event(submitted, decision, at=at)
        topic, name = Topic.REVIEW, "request.needs_review"
    else:
        value = domain.rejected_event(submitted, decision, at=at, rejected_by=actor)
        topic = Topic.REJECTED
        name = "request.duplicate" if decision.outcome == "duplicate" else "request.rejected"
    key = submitted.request_id
    return Event(topic, value, key=key, name=name, event_id=event_id, cause=cause)


def now_ms(clock: Callable[[], datetime] = utcnow) -> datetime:
    """Now, to the millisecond: what the database keeps, so a republished event is identical."""
    now = clock()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
