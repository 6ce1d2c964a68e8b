"""Verified requests (both lanes), one record at a time: the careful path of the batch
planner in ``dispatch.py``. Every leg is recorded before any job goes out."""

from __future__ import annotations

from services.route import domain
from services.route.handlers.context import RouteContext
from services.route.handlers.effects import publish_leg, record_leg, refresh_summary
from services.route.models import Leg
from services.route.teams import choose_team
from shared.faults import crash_point
from shared.metrics import END_TO_END_SECONDS
from shared.schemas import DispatchJob, VerifiedRequest
from shared.stage import Record


async def handle_verified(record: Record, *, ctx: RouteContext) -> None:
    request = record.parse(VerifiedRequest)
    now = ctx.clock()
    facts = domain.JobFacts.of(request)
    load = await ctx.repo.team_load()
    plans = domain.plan(request, ctx.rules)
    departments = domain.departments_of(plans)
    stored: list[tuple[Leg, DispatchJob]] = []
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
        await publish_leg(ctx, leg, job, cause=record.envelope)
    END_TO_END_SECONDS.labels("route").observe((now - request.submitted_at).total_seconds())
