"""What the command centre and the department boards do, applied: the re-dispatch the pure rule
(:mod:`services.route.redispatch`) planned, and a board's report on ``help.status``.

Re-dispatch applies its plan in an order that a retry can always finish: the new leg (keyed by
the leg it replaces), its timeline entry, the hand-over of the replaced legs (the command leg
last: once it names its successor the plan is applied), then the job on its department's topic,
published once. A retry after a crash decides again and finds the same leg; a retry after the
hand-over is a replay that only publishes the job if it never went out.

A board does not change a leg itself: it publishes the department's report on ``help.status``,
exactly as a departmental system would, and route's status consumer applies it like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from services.route import handlers, redispatch
from services.route.handlers import RouteContext
from services.route.models import Leg
from shared.envelope import derive_id
from shared.schemas import DepartmentStatus, DispatchJob, StatusEvent
from shared.topics import Department, Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Redispatched:
    """The job the new leg carries, the legs it replaced, and whether this was a replay."""

    job: DispatchJob
    replaced: tuple[str, ...]
    replayed: bool


async def redispatch_leg(
    ctx: RouteContext, leg_id: str, ask: redispatch.Ask
) -> Redispatched | redispatch.Refusal | None:
    """Re-dispatch a command leg (None: no such leg)."""
    leg = await ctx.repo.get_leg(leg_id)
    if leg is None:
        return None
    watched = await ctx.repo.get_leg(leg.parent) if leg.parent else None
    decision = redispatch.decide(
        leg,
        ask,
        watched=watched,
        rules=ctx.rules,
        directory=ctx.directory,
        load=await ctx.repo.team_load(),
    )
    if isinstance(decision, redispatch.Refusal):
        return decision
    if isinstance(decision, redispatch.Plan):
        await _apply(ctx, decision, leg, watched)
    successor = await ctx.repo.get_leg(decision.new_leg_id)
    if successor is None:  # a replay whose leg is gone: nothing route can finish
        return redispatch.Refusal("superseded", "This leg was replaced by another one.")
    job = await handlers.dispatch_leg(ctx, successor, cause=None, set_status=False)
    await handlers.refresh_summary(ctx, job.request_id)
    replaced = tuple(decision.replaces) if isinstance(decision, redispatch.Plan) else ()
    return Redispatched(job, replaced, replayed=isinstance(decision, redispatch.Replay))


async def _apply(
    ctx: RouteContext, plan: redispatch.Plan, source: Leg, watched: Leg | None
) -> None:
    # The new leg's id is the one the plan named: the leg of its slot, first attempt.
    leg = await handlers.new_leg(
        ctx,
        source,
        slot=plan.slot,
        attempt=1,
        department=plan.department,
        team_id=plan.team_id,
        rule_id=redispatch.RULE_ID,
        reason=plan.reason,
        cycle=plan.cycle,
        at=ctx.clock(),
        category=plan.category,
    )
    job = leg.job
    # The desk's reason and who gave it, on the request's timeline (the dispatch's own entry:
    # recording the leg later finds it applied and adds nothing).
    await ctx.repo.record_transition(
        plan.request_id,
        event_id=plan.event_id,
        status="dispatched",
        at=job.dispatched_at,
        actor=plan.actor,
        reason=plan.reason,
        detail=plan.detail(source.department),
        set_status=False,
        set_fields={"category": plan.category} if plan.recategorised else None,
    )
    await handlers.record_leg(ctx, leg, set_status=False)
    handed_over = [watched] if watched is not None and watched.leg_id in plan.replaces else []
    for old in [*handed_over, source]:  # the command leg last: then the plan is applied
        old = await ctx.repo.release_leg(old)
        await ctx.repo.timers.reschedule(
            old.leg_id,
            old.request_id,
            None,
            deadlines=(old.acknowledge_by, old.resolve_by),
            now=ctx.clock(),
        )
        await ctx.repo.hand_over(old, by=plan.new_leg_id)
    logger.info(
        "leg re-dispatched",
        extra={
            "request_id": plan.request_id,
            "leg_id": plan.new_leg_id,
            "from_leg": plan.source,
            "department": plan.department,
            "team_id": plan.team_id,
            "recategorised": plan.recategorised,
        },
    )


# ---------------------------------------------------------------------------------- boards

BOARD_STATUSES: tuple[DepartmentStatus, ...] = (
    "acknowledged",
    "in_progress",
    "needs_info",
    "resolved",
    "rejected",
)
NOTE_REQUIRED: frozenset[str] = frozenset({"rejected", "needs_info"})


@dataclass(frozen=True, slots=True)
class BoardRefusal:
    code: str
    message: str


def board_report(
    leg: Leg,
    *,
    department: Department,
    status: DepartmentStatus,
    note: str | None,
    actor: str,
    action_id: str,
    at: datetime,
) -> StatusEvent | BoardRefusal:
    """The department's report on one of its legs, as its own system would publish it (pure).

    ``action_id`` names the press of the button (one per rendered form), so a form sent twice
    is one event, and route's status consumer applies it once."""
    if leg.department != department:
        return BoardRefusal("not_yours", "This job belongs to another department.")
    if not leg.open:
        return BoardRefusal("closed", "This job is closed or was handed to another team.")
    text = (note or "").strip() or None
    if status in NOTE_REQUIRED and text is None:
        return BoardRefusal("note_required", "Say why: the reason goes with the report.")
    return StatusEvent(
        event_id=derive_id("board", leg.leg_id, status, action_id),
        request_id=leg.request_id,
        department=department,
        status=status,
        leg_id=leg.leg_id,
        note=text,
        actor=actor,
        occurred_at=at,
    )


async def publish_report(ctx: RouteContext, event: StatusEvent) -> None:
    await ctx.bus.emit(
        Topic.STATUS,
        event,
        key=event.request_id,
        name=f"status.{event.status}",
        event_id=event.event_id,
    )
    logger.info(
        "board report published",
        extra={
            "request_id": event.request_id,
            "leg_id": event.leg_id,
            "event_id": event.event_id,
            "status": event.status,
        },
    )
