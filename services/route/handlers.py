"""Route's handlers: dispatch verified requests leg by leg, follow the departments' status
events, re-route rejections, escalate missed deadlines and reopened requests.

Every effect is keyed by an id derived from its cause (leg ids, event ids), and a status
event is marked applied only after its effects, so a redelivery finishes what a crash left
undone and repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.route import domain, legs
from services.route.published import PublishedEvents
from services.route.repository import CREATED_NOW, RouteRepository
from services.route.teams import Directory, choose_team
from shared.db import Document
from shared.envelope import Envelope, utcnow
from shared.faults import crash_point
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS, INFO_REQUESTS, REQUESTS
from shared.schemas import (
    DispatchJob,
    LifecycleEvent,
    Priority,
    RequestStatus,
    StatusEvent,
    VerifiedRequest,
)
from shared.stage import PermanentError, Record
from shared.topics import Department, Topic, dispatch_topic

logger = logging.getLogger(__name__)

ACTOR = "route"


@dataclass(frozen=True)
class RouteContext:
    bus: EventBus
    repo: RouteRepository
    rules: domain.Rules
    levels: dict[Priority, domain.ServiceLevel]
    directory: Directory
    # Looks for a leg on its dispatch topic after a crash between publish and mark (None: never
    # looks, and such a leg is published again with the same ids).
    published: PublishedEvents | None = None
    # The time, for every stamp route writes and every deadline it checks (tests fix it).
    clock: Callable[[], datetime] = utcnow


# ---------------------------------------------------------------------------------- dispatch


async def handle_verified(record: Record, *, ctx: RouteContext) -> None:
    request = record.parse(VerifiedRequest)
    now = ctx.clock()
    facts = domain.JobFacts.of(request)
    load = await ctx.repo.team_load()
    plans = domain.plan(request, ctx.rules)
    departments = domain.departments_of(plans)
    stored: list[tuple[Document, DispatchJob]] = []
    for plan in plans:
        leg_id = domain.leg_id(request.request_id, plan.department)
        leg = await ctx.repo.get_leg(leg_id)
        if leg is None:
            team = choose_team(ctx.directory, plan.department, request.location.district, load)
            load[team.id] = load.get(team.id, 0) + 1  # the next leg sees this one
            job = domain.dispatch_job(
                facts,
                leg=leg_id,
                department=plan.department,
                team_id=team.id,
                rule_version=ctx.rules.version,
                rule_id=plan.rule_id,
                levels=ctx.levels,
                at=now,
            )
            leg = await ctx.repo.create_leg(job, slot=plan.department, cycle=0)
            crash_point("route.after_leg_stored")
        job = await record_leg(ctx, leg, set_status=True, departments=departments)
        stored.append((leg, job))
    await refresh_summary(ctx, request.request_id)
    # Every leg is recorded, and the request's summary written, before any job goes out: a
    # department's report handled meanwhile is never overwritten by this processing.
    for leg, job in stored:
        await _publish_leg(ctx, leg, job, cause=record.envelope)
    END_TO_END_SECONDS.labels("route").observe((now - request.submitted_at).total_seconds())


async def dispatch_leg(
    ctx: RouteContext,
    leg: Document,
    *,
    cause: Envelope | None,
    set_status: bool,
    departments: list[str] | None = None,
) -> DispatchJob:
    """Record a stored leg, then publish it (once)."""
    job = await record_leg(ctx, leg, set_status=set_status, departments=departments)
    await _publish_leg(ctx, leg, job, cause=cause)
    return job


async def record_leg(
    ctx: RouteContext,
    leg: Document,
    *,
    set_status: bool,
    departments: list[str] | None = None,
) -> DispatchJob:
    """Everything route keeps about a leg — its team's count, the case, the lookup by request
    and department, its timers, the request's timeline — stored before the job goes out: a
    department may answer the moment it sees the job, and its report must find all of it."""
    job = DispatchJob.model_validate(leg["job"])
    await ctx.repo.count_leg(leg)
    await ctx.repo.add_to_case(job.request_id, leg_id=job.leg_id)
    open_leg = leg.get("current", True) and leg.get("progress", "dispatched") not in legs.TERMINAL
    if open_leg and leg.get("blocking", True):
        await ctx.repo.set_lookup(job.request_id, department=job.department, leg_id=job.leg_id)
        await ctx.repo.arm_timer(leg)
    elif open_leg and await ctx.repo.lookup(job.request_id, department=job.department) is None:
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


async def _publish_leg(
    ctx: RouteContext, leg: Document, job: DispatchJob, *, cause: Envelope | None
) -> None:
    """Publish a recorded leg on its department's topic unless it already went out."""
    event_id = effect_id("dispatch", job.leg_id)
    if not leg.get("published") and await _went_out(ctx, leg, job, event_id):
        # A processing that died between publishing and marking: mark, do not publish again.
        await ctx.repo.mark_published(leg, ctx.clock())
        logger.info(
            "leg found on its dispatch topic; not published again",
            extra={"request_id": job.request_id, "leg_id": job.leg_id},
        )
    if leg.get("published"):
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
    REQUESTS.labels(
        "dispatched", job.category, job.priority, job.location.district or "unknown"
    ).inc()
    logger.info(
        "leg dispatched",
        extra={
            "request_id": job.request_id,
            "leg_id": job.leg_id,
            "department": job.department,
            "team_id": job.team_id,
            "rule_id": job.rule_id,
        },
    )


async def _went_out(ctx: RouteContext, leg: Document, job: DispatchJob, event_id: str) -> bool:
    """Whether a stored, unmarked leg is on its dispatch topic already. Only a leg stored by an
    earlier processing can be (a crash after the publish, before the mark); one created by this
    processing is not looked for, so the hot path never reads the topic."""
    if leg.get(CREATED_NOW) or ctx.published is None:
        return False
    return await ctx.published.contains(
        dispatch_topic(job.department), ce_id=event_id, since=job.dispatched_at
    )


async def _new_leg(
    ctx: RouteContext,
    source: Document,
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
) -> Document:
    """A further leg of a request (re-route, escalation), built from an existing leg's job."""
    facts = domain.JobFacts.of(DispatchJob.model_validate(source["job"]))
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
        job, slot=slot, cycle=cycle, blocking=blocking, parent=str(source["_id"])
    )


# ---------------------------------------------------------------------------------- status


async def handle_status(record: Record, *, ctx: RouteContext) -> None:
    event = record.parse(StatusEvent)
    leg = await _leg_of(ctx, event)
    state = legs.LegState(
        department=leg["department"],
        progress=leg.get("progress", "dispatched"),
        last_occurred_at=leg.get("last_occurred_at"),
        last_event_id=leg.get("last_event_id"),
        applied_events=frozenset(leg.get("applied_events", ())),
        current=bool(leg.get("current", True)),
    )
    outcome = legs.apply_status(
        state, event_id=event.event_id, status=event.status, occurred_at=event.occurred_at
    )
    log = {
        "request_id": event.request_id,
        "leg_id": leg["_id"],
        "event_id": event.event_id,
        "status": event.status,
        "outcome": outcome,
    }
    if outcome == "duplicate":
        logger.info("status event already applied", extra=log)
        return
    if outcome == "apply":
        await ctx.repo.set_progress(
            leg, status=event.status, occurred_at=event.occurred_at, event_id=event.event_id
        )
        await _after_status(ctx, leg, event, cause=record.envelope)
        crash_point("route.after_status_applied")
    logger.info("status event", extra=log)
    await ctx.repo.record_event(
        str(leg["_id"]),
        event_id=event.event_id,
        entry={
            "event_id": event.event_id,
            "status": event.status,
            "occurred_at": event.occurred_at,
            "received_at": ctx.clock(),
            "actor": event.actor,
            "note": event.note,
            "outcome": outcome,
        },
    )


async def _leg_of(ctx: RouteContext, event: StatusEvent) -> Document:
    """The leg a status event is about: by the leg id it echoes, else by request and
    department."""
    leg_id = event.leg_id or await ctx.repo.lookup(event.request_id, department=event.department)
    if leg_id is None:
        raise PermanentError("unknown_leg", f"no {event.department} leg for this request")
    leg = await ctx.repo.get_leg(leg_id)
    if leg is None:
        raise PermanentError("unknown_leg", f"leg {leg_id} does not exist")
    if leg["request_id"] != event.request_id:
        raise PermanentError("leg_mismatch", f"leg {leg_id} belongs to another request")
    if leg["department"] != event.department:
        raise PermanentError("department_mismatch", f"leg {leg_id} is {leg['department']}'s")
    return leg


async def _after_status(
    ctx: RouteContext, leg: Document, event: StatusEvent, *, cause: Envelope | None
) -> None:
    """The effects of an applied status: counters, timers, re-routing, the request's status."""
    if event.status in legs.TERMINAL:
        await ctx.repo.release_leg(leg)
    await ctx.repo.reschedule_timer(
        str(leg["_id"]),
        legs.next_due(
            progress=event.status,
            acknowledge_by=leg["acknowledge_by"],
            resolve_by=leg["resolve_by"],
            breached=leg.get("breached", ()),
        ),
    )
    if event.status == "rejected":
        await _reroute(ctx, leg, event, cause=cause)
    if event.status == "needs_info":
        await _ask_citizen(ctx, leg, event, cause=cause)
    await _advance_request(ctx, event.request_id, trigger=leg, at=event.occurred_at, cause=cause)


async def _ask_citizen(
    ctx: RouteContext, leg: Document, event: StatusEvent, *, cause: Envelope | None
) -> None:
    """A department needs more from the citizen: remember which leg asked (the citizen's
    addition goes to it) and announce it, with the department's words, for notify."""
    await ctx.repo.ask_info(
        event.request_id,
        {
            "leg_id": leg["_id"],
            "department": leg["department"],
            "team_id": leg["team_id"],
            "asked_event_id": event.event_id,
            "asked_at": event.occurred_at,
        },
    )
    await _emit_lifecycle(
        ctx,
        leg,
        status="needs_info",
        event_id=effect_id("needs-info", event.event_id),
        reason="needs_info",
        at=event.occurred_at,
        cause=cause,
        note=event.note,
        set_status=False,  # on the timeline; the request stays in progress
    )
    INFO_REQUESTS.labels("asked", leg["department"]).inc()


async def _reroute(
    ctx: RouteContext, leg: Document, event: StatusEvent, *, cause: Envelope | None
) -> None:
    job = DispatchJob.model_validate(leg["job"])
    case = await ctx.repo.get_case(job.request_id) or {}
    others = [
        other
        for other in await ctx.repo.case_legs(case)
        if other["_id"] != leg["_id"] and other.get("current") and other.get("blocking", True)
    ]
    rejected_by = [*leg.get("rejected_by", []), job.team_id]
    decision = legs.reroute(
        department=job.department,
        attempt=job.attempt,
        district=job.location.district,
        rejected_by=rejected_by,
        busy_departments={str(o["department"]) for o in others},
        rules=ctx.rules,
        directory=ctx.directory,
        load=await ctx.repo.team_load(),
    )
    if decision is None:
        return
    note = f": {event.note}" if event.note else ""
    successor = await _new_leg(
        ctx,
        leg,
        slot=str(leg.get("slot", job.department)),
        attempt=decision.attempt,
        department=decision.department,
        team_id=decision.team_id,
        rule_id=f"reroute:{decision.reason}",
        reason=f"{decision.reason} after rejection by {job.team_id}{note}"[:500],
        cycle=int(leg.get("cycle", 0)),
        at=ctx.clock(),
    )
    await ctx.repo.supersede(leg, by=str(successor["_id"]), rejected_by=rejected_by)
    await dispatch_leg(ctx, successor, cause=cause, set_status=False)
    if decision.escalates:
        await _emit_lifecycle(
            ctx,
            successor,
            status="escalated",
            event_id=effect_id("escalated", str(successor["_id"])),
            reason=decision.reason,
            at=ctx.clock(),
            cause=cause,
        )


async def _advance_request(
    ctx: RouteContext, request_id: str, *, trigger: Document, at: datetime, cause: Envelope | None
) -> None:
    """Announce the request-level status its current legs add up to, once per cycle."""
    case = await ctx.repo.get_case(request_id)
    if case is None:
        return
    cycle = int(case.get("cycle", 0))
    all_legs = await ctx.repo.case_legs(case)
    current = [
        leg
        for leg in all_legs
        if leg.get("current") and leg.get("blocking", True) and int(leg.get("cycle", 0)) == cycle
    ]
    level = legs.lifecycle_step(
        legs.request_level(str(leg.get("progress", "dispatched")) for leg in current),
        [key.split(":", 1)[1] for key in case.get("emitted", []) if key.startswith(f"{cycle}:")],
    )
    if level is not None:
        await _emit_lifecycle(
            ctx,
            trigger,
            status=level,
            event_id=effect_id("lifecycle", request_id, str(cycle), level),
            reason=None,
            at=at,
            cause=cause,
        )
        await ctx.repo.mark_emitted(request_id, key=f"{cycle}:{level}")
        if level == "resolved":
            REQUESTS.labels(
                "resolved",
                trigger["job"]["category"],
                trigger["job"]["priority"],
                (trigger["job"].get("location") or {}).get("district") or "unknown",
            ).inc()
    await refresh_summary(ctx, request_id)


async def refresh_summary(ctx: RouteContext, request_id: str) -> None:
    """The ``legs`` summary and departments on the request record, for its status view."""
    case = await ctx.repo.get_case(request_id)
    if case is None:
        return
    summary: list[dict[str, Any]] = [
        {
            "leg_id": leg["_id"],
            "department": leg["department"],
            "team_id": leg["team_id"],
            "status": leg.get("status", "dispatched"),
            "attempt": leg.get("attempt", 1),
            "current": bool(leg.get("current", True)),
            "role": "work" if leg.get("blocking", True) else "oversight",
        }
        for leg in await ctx.repo.case_legs(case)
    ]
    departments = sorted({leg["department"] for leg in summary if leg["current"]})
    await ctx.repo.set_summary(request_id, summary, departments)


async def _emit_lifecycle(
    ctx: RouteContext,
    leg: Document,
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
    job = DispatchJob.model_validate(leg["job"])
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


# ---------------------------------------------------------------------------------- lifecycle


async def handle_lifecycle(record: Record, *, ctx: RouteContext) -> None:
    """Reopened and closed requests, from the call-back survey (route's own events skipped)."""
    event = record.parse(LifecycleEvent)
    if event.actor == ACTOR or event.status not in ("reopened", "closed"):
        return
    case = await ctx.repo.get_case(event.request_id)
    if case is None or not case.get("leg_ids"):
        raise PermanentError("unknown_request", f"route never dispatched {event.request_id}")
    if event.event_id in case.get("handled", ()):
        return
    if event.status == "closed":
        await ctx.repo.record_transition(
            event.request_id,
            event_id=event.event_id,
            status="closed",
            at=event.at,
            actor=event.actor,
            reason=event.reason,
        )
        await ctx.repo.mark_handled(event.request_id, event_id=event.event_id)
        return
    await ctx.repo.record_transition(
        event.request_id,
        event_id=event.event_id,
        status="reopened",
        at=event.at,
        actor=event.actor,
        reason=event.reason,
    )
    cycle = await ctx.repo.start_cycle(event.request_id, reopen_event_id=event.event_id)
    first = await ctx.repo.get_leg(case["leg_ids"][0])
    if first is None:
        raise PermanentError("unknown_request", "the request's first leg is missing")
    district = (first["job"].get("location") or {}).get("district")
    team = choose_team(ctx.directory, "command", district, await ctx.repo.team_load())
    leg = await _new_leg(
        ctx,
        first,
        slot=f"reopened-{cycle}",
        attempt=1,
        department="command",
        team_id=team.id,
        rule_id="reopened",
        reason="reopened: the citizen was not satisfied"
        + (f" ({event.reason})" if event.reason else ""),
        cycle=cycle,
        at=ctx.clock(),
    )
    await dispatch_leg(ctx, leg, cause=record.envelope, set_status=False)
    await _emit_lifecycle(
        ctx,
        leg,
        status="escalated",
        event_id=effect_id("escalated", event.event_id),
        reason="reopened",
        at=ctx.clock(),
        cause=record.envelope,
    )
    await refresh_summary(ctx, event.request_id)
    await ctx.repo.mark_handled(event.request_id, event_id=event.event_id)
