"""Reopened and closed requests from the call-back survey: a reopened request gets a new
cycle and a job for the command centre."""

from __future__ import annotations

from services.route.handlers.context import ACTOR, RouteContext
from services.route.handlers.effects import dispatch_leg, emit_escalated, new_leg, refresh_summary
from services.route.teams import choose_team
from shared.schemas import LifecycleEvent
from shared.stage import PermanentError, Record


async def handle_lifecycle(record: Record, *, ctx: RouteContext) -> None:
    """Reopened and closed requests, from the call-back survey (route's own events skipped)."""
    event = record.parse(LifecycleEvent)
    if event.actor == ACTOR or event.status not in ("reopened", "closed"):
        return
    case = await ctx.repo.get_case(event.request_id)
    if case is None or not case.leg_ids:
        raise PermanentError("unknown_request", f"route never dispatched {event.request_id}")
    if event.event_id in case.handled:
        return
    await ctx.repo.record_transition(
        event.request_id,
        event_id=event.event_id,
        status=event.status,
        at=event.at,
        actor=event.actor,
        reason=event.reason,
    )
    if event.status == "closed":
        await ctx.repo.mark_handled(event.request_id, event_id=event.event_id)
        return
    cycle = await ctx.repo.start_cycle(event.request_id, reopen_event_id=event.event_id)
    first = await ctx.repo.get_leg(case.leg_ids[0])
    if first is None:
        raise PermanentError("unknown_request", "the request's first leg is missing")
    team = choose_team(
        ctx.directory, "command", first.job.location.district, await ctx.repo.team_load()
    )
    leg = await new_leg(
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
    await emit_escalated(
        ctx, leg, cause_id=event.event_id, reason="reopened", cause=record.envelope
    )
    await refresh_summary(ctx, event.request_id)
    await ctx.repo.mark_handled(event.request_id, event_id=event.event_id)
