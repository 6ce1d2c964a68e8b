"""The departments' status reports: apply each once and in order, then its effects (counters,
timers, re-routing a rejection, asking the citizen, the request-level status)."""

from __future__ import annotations

import logging
from datetime import datetime

from services.route import domain, legs
from services.route.handlers.context import RouteContext
from services.route.handlers.effects import (
    dispatch_leg,
    emit_escalated,
    emit_lifecycle,
    new_leg,
    refresh_summary,
)
from services.route.models import Leg
from shared.envelope import Envelope
from shared.faults import crash_point
from shared.kafka import effect_id
from shared.metrics import INFO_REQUESTS, REQUESTS
from shared.schemas import StatusEvent
from shared.stage import PermanentError, Record

logger = logging.getLogger(__name__)


async def handle_status(record: Record, *, ctx: RouteContext) -> None:
    event = record.parse(StatusEvent)
    leg = await _leg_of(ctx, event)
    outcome = legs.apply_status(
        leg.state(), event_id=event.event_id, status=event.status, occurred_at=event.occurred_at
    )
    log = {
        "request_id": event.request_id,
        "leg_id": leg.leg_id,
        "event_id": event.event_id,
        "status": event.status,
        "outcome": outcome,
    }
    if outcome == "duplicate":
        logger.info("status event already applied", extra=log)
        return
    if outcome == "apply":
        leg = await ctx.repo.set_progress(
            leg, status=event.status, occurred_at=event.occurred_at, event_id=event.event_id
        )
        await _after_status(ctx, leg, event, cause=record.envelope)
        crash_point("route.after_status_applied")
    logger.info("status event", extra=log)
    await ctx.repo.record_event(
        leg.leg_id,
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


async def _leg_of(ctx: RouteContext, event: StatusEvent) -> Leg:
    """The leg a status event is about: by the leg id it echoes, else the department's
    current leg (a lookup document once a leg replaced the first one, else the first leg,
    whose id derives from the request and department)."""
    leg_id = event.leg_id or await ctx.repo.lookup(event.request_id, department=event.department)
    leg = await ctx.repo.get_leg(leg_id or domain.leg_id(event.request_id, event.department))
    if leg is None and leg_id is None:
        raise PermanentError("unknown_leg", f"no {event.department} leg for this request")
    if leg is None:
        raise PermanentError("unknown_leg", f"leg {leg_id} does not exist")
    if leg.request_id != event.request_id:
        raise PermanentError("leg_mismatch", f"leg {leg_id} belongs to another request")
    if leg.department != event.department:
        raise PermanentError("department_mismatch", f"leg {leg_id} is {leg.department}'s")
    return leg


async def _after_status(
    ctx: RouteContext, leg: Leg, event: StatusEvent, *, cause: Envelope | None
) -> None:
    """The effects of an applied status: counters, timers, re-routing, the request's status."""
    if event.status in legs.TERMINAL:
        leg = await ctx.repo.release_leg(leg)
    await ctx.repo.timers.reschedule(
        leg.leg_id,
        leg.request_id,
        leg.next_due(progress=event.status),
        deadlines=(leg.acknowledge_by, leg.resolve_by),
        now=ctx.clock(),
    )
    if event.status == "rejected":
        await _reroute(ctx, leg, event, cause=cause)
    if event.status == "needs_info":
        await _ask_citizen(ctx, leg, event, cause=cause)
    await _advance_request(ctx, event.request_id, trigger=leg, at=event.occurred_at, cause=cause)


async def _ask_citizen(
    ctx: RouteContext, leg: Leg, event: StatusEvent, *, cause: Envelope | None
) -> None:
    """A department needs more from the citizen: remember which leg asked (the citizen's
    addition goes to it) and announce it, with the department's words, for notify."""
    await ctx.repo.ask_info(
        event.request_id,
        {
            "leg_id": leg.leg_id,
            "department": leg.department,
            "team_id": leg.team_id,
            "asked_event_id": event.event_id,
            "asked_at": event.occurred_at,
        },
    )
    await emit_lifecycle(
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
    INFO_REQUESTS.labels("asked", leg.department).inc()


async def _reroute(
    ctx: RouteContext, leg: Leg, event: StatusEvent, *, cause: Envelope | None
) -> None:
    job = leg.job
    case = await ctx.repo.get_case(job.request_id)
    others = [
        other
        for other in (await ctx.repo.case_legs(case) if case else [])
        if other.leg_id != leg.leg_id and other.current and other.blocking
    ]
    rejected_by = [*leg.rejected_by, job.team_id]
    decision = legs.reroute(
        department=job.department,
        attempt=job.attempt,
        district=job.location.district,
        rejected_by=rejected_by,
        busy_departments={o.department for o in others},
        rules=ctx.rules,
        directory=ctx.directory,
        load=await ctx.repo.team_load(),
    )
    if decision is None:
        return
    note = f": {event.note}" if event.note else ""
    successor = await new_leg(
        ctx,
        leg,
        slot=leg.slot,
        attempt=decision.attempt,
        department=decision.department,
        team_id=decision.team_id,
        rule_id=f"reroute:{decision.reason}",
        reason=f"{decision.reason} after rejection by {job.team_id}{note}"[:500],
        cycle=leg.cycle,
        at=ctx.clock(),
    )
    await ctx.repo.supersede(leg, by=successor.leg_id, rejected_by=rejected_by)
    await dispatch_leg(ctx, successor, cause=cause, set_status=False)
    if decision.escalates:
        await emit_escalated(
            ctx, successor, cause_id=successor.leg_id, reason=decision.reason, cause=cause
        )


async def _advance_request(
    ctx: RouteContext, request_id: str, *, trigger: Leg, at: datetime, cause: Envelope | None
) -> None:
    """Announce the request-level status its current legs add up to, once per cycle."""
    case = await ctx.repo.get_case(request_id)
    if case is None:
        return
    cycle = case.cycle
    current = case.current_work(await ctx.repo.case_legs(case))
    level = legs.lifecycle_step(
        legs.request_level(leg.progress for leg in current), case.emitted_in(cycle)
    )
    if level is not None:
        await emit_lifecycle(
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
                trigger.job.category,
                trigger.job.priority,
                trigger.job.location.district or "unknown",
            ).inc()
    await refresh_summary(ctx, request_id)
