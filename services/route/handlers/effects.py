"""What every input of route does alike: record a leg and publish it once, build a further
leg from an existing one, announce a request-level event, refresh the request's summary."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from services.route import domain
from services.route.dispatch import count_dispatched
from services.route.handlers.context import ACTOR, RouteContext
from services.route.models import Leg
from shared.envelope import Envelope
from shared.faults import crash_point
from shared.kafka import effect_id
from shared.schemas import Category, DispatchJob, LifecycleEvent, RequestStatus
from shared.topics import Department, Topic, dispatch_topic

logger = logging.getLogger(__name__)


async def dispatch_leg(
    ctx: RouteContext,
    leg: Leg,
    *,
    cause: Envelope | None,
    set_status: bool,
    departments: list[str] | None = None,
) -> DispatchJob:
    """Record a stored leg, then publish it (once)."""
    job = await record_leg(ctx, leg, set_status=set_status, departments=departments)
    await publish_leg(ctx, leg, job, cause=cause)
    return job


async def record_leg(
    ctx: RouteContext,
    leg: Leg,
    *,
    set_status: bool,
    departments: list[str] | None = None,
) -> DispatchJob:
    """Everything route keeps about a leg — its team's count, the case, the lookup by request
    and department, its timers, the request's timeline — stored before the job goes out: a
    department may answer the moment it sees the job, and its report must find all of it."""
    job = leg.job
    await ctx.repo.count_leg(leg)
    await ctx.repo.add_to_case(job.request_id, leg_id=job.leg_id)
    if leg.open and leg.blocking:
        if job.leg_id != domain.leg_id(job.request_id, job.department):
            # A leg that replaced the department's first one (found without a lookup).
            await ctx.repo.set_lookup(job.request_id, department=job.department, leg_id=job.leg_id)
        await ctx.repo.timers.arm(job.leg_id, job.request_id, leg.acknowledge_by, now=ctx.clock())
    elif leg.open and not await ctx.repo.has_current_leg(job.request_id, department=job.department):
        # An oversight job: findable by request and department only if nothing else is.
        await ctx.repo.set_lookup(job.request_id, department=job.department, leg_id=job.leg_id)
    await ctx.repo.record_transition(
        job.request_id,
        event_id=effect_id("dispatch", job.leg_id),
        status="dispatched",
        at=job.dispatched_at,
        reason=job.rule_id,  # a code: the request's timeline is public
        detail={"department": job.department, "team_id": job.team_id, "leg_id": job.leg_id},
        set_status=set_status,
        set_fields={"departments": departments} if departments else None,
    )
    return job


async def publish_leg(
    ctx: RouteContext, leg: Leg, job: DispatchJob, *, cause: Envelope | None
) -> None:
    """Publish a recorded leg on its department's topic unless it already went out."""
    event_id = effect_id("dispatch", job.leg_id)
    if not leg.published and await went_out(ctx, leg, job, event_id):
        # A processing that died between publishing and marking: mark, do not publish again.
        leg = await ctx.repo.mark_published(leg, ctx.clock())
        logger.info(
            "leg found on its dispatch topic; not published again",
            extra={"request_id": job.request_id, "leg_id": job.leg_id},
        )
    if leg.published:
        return
    await ctx.bus.emit(
        dispatch_topic(job.department),
        job,
        key=job.request_id,
        name="leg.dispatched",
        event_id=event_id,
        cause=cause,
    )
    crash_point("route.after_publish")
    await ctx.repo.mark_published(leg, ctx.clock())
    crash_point("route.after_mark")
    count_dispatched(job)


async def went_out(ctx: RouteContext, leg: Leg, job: DispatchJob, event_id: str) -> bool:
    """Whether a stored, unmarked leg is on its dispatch topic already. Only a leg stored by an
    earlier processing can be (a crash after the publish, before the mark); one created by this
    processing is not looked for, so the hot path never reads the topic."""
    if leg.created_now or ctx.published is None:
        return False
    return await ctx.published.contains(
        dispatch_topic(job.department), ce_id=event_id, since=job.dispatched_at
    )


async def new_leg(
    ctx: RouteContext,
    source: Leg,
    *,
    slot: str,
    attempt: int,
    department: Department,
    team_id: str,
    rule_id: str,
    reason: str,
    cycle: int,
    blocking: bool = True,
    at: datetime,
    category: Category | None = None,
) -> Leg:
    """A further leg of a request (re-route, escalation, re-dispatch), built from an existing
    leg's job (under ``category`` when the request is re-categorised)."""
    facts = domain.JobFacts.of(source.job)
    if category is not None:
        facts = dataclasses.replace(facts, category=category)
    leg_id = domain.leg_id(facts.request_id, slot, attempt)
    existing = await ctx.repo.get_leg(leg_id)
    if existing is not None:
        return existing
    job = domain.dispatch_job(
        facts,
        leg=leg_id,
        department=department,
        team_id=team_id,
        rule_version=ctx.rules.version,
        rule_id=rule_id,
        levels=ctx.levels,
        at=at,
        attempt=attempt,
        reason=reason,
    )
    return await ctx.repo.create_leg(
        Leg.new(job, slot=slot, cycle=cycle, blocking=blocking, parent=source.leg_id)
    )


async def refresh_summary(ctx: RouteContext, request_id: str) -> None:
    """The ``legs`` summary and departments on the request record, for its status view."""
    case = await ctx.repo.get_case(request_id)
    if case is None:
        return
    case_legs = await ctx.repo.case_legs(case)
    summary = [leg.summary() for leg in case_legs]
    departments = sorted({leg.department for leg in case_legs if leg.current})
    await ctx.repo.set_summary(request_id, summary, departments)


async def emit_lifecycle(
    ctx: RouteContext,
    leg: Leg,
    *,
    status: RequestStatus,
    event_id: str,
    reason: str | None,
    at: datetime,
    cause: Envelope | None,
    note: str | None = None,
    set_status: bool = True,
) -> None:
    """Publish a request-level event (with what notify needs) and record it on the request."""
    job = leg.job
    event = LifecycleEvent(
        event_id=event_id,
        request_id=job.request_id,
        status=status,
        at=at,
        actor=ACTOR,
        reason=reason,
        leg_id=job.leg_id,
        department=job.department,
        team_id=job.team_id,
        category=job.category,
        priority=job.priority,
        language=job.language,
        contact=job.contact,
        note=note,
    )
    await ctx.bus.emit(
        Topic.LIFECYCLE,
        event,
        key=job.request_id,
        name=f"request.{status}",
        event_id=event_id,
        cause=cause,
    )
    await ctx.repo.record_transition(
        job.request_id,
        event_id=event_id,
        status=status,
        at=at,
        reason=reason,
        detail={"department": job.department, "team_id": job.team_id, "leg_id": job.leg_id},
        set_status=set_status,
    )
    logger.info(
        "request %s",
        status,
        extra={"request_id": job.request_id, "leg_id": job.leg_id, "reason": reason},
    )


async def emit_escalated(
    ctx: RouteContext, leg: Leg, *, cause_id: str, reason: str, cause: Envelope | None
) -> None:
    """Announce that the command centre follows the request up now, once per cause: the
    event id is derived from ``cause_id`` (what gave the command centre its leg)."""
    await emit_lifecycle(
        ctx,
        leg,
        status="escalated",
        event_id=effect_id("escalated", cause_id),
        reason=reason,
        at=ctx.clock(),
        cause=cause,
    )
