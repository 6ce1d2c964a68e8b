"""Verified requests (both lanes), one record at a time: the careful path of the batch
planner in ``dispatch.py``. Every leg is recorded before any job goes out."""

from __future__ import annotations

from services.route import domain
from services.route.dispatch import DispatchRules
from services.route.handlers.context import RouteContext
from services.route.handlers.effects import publish_leg, record_leg, refresh_summary
from services.route.models import Leg
from shared.faults import crash_point
from shared.metrics import END_TO_END_SECONDS
from shared.schemas import DispatchJob, VerifiedRequest
from shared.stage import Record


async def handle_verified(record: Record, *, ctx: RouteContext) -> None:
    request = record.parse(VerifiedRequest)
    now = ctx.clock()
    facts = domain.JobFacts.of(request)
    load = await ctx.repo.team_load()
    rules = DispatchRules(rules=ctx.rules, levels=ctx.levels, directory=ctx.directory)
    plans = domain.plan(request, ctx.rules)
    departments = domain.departments_of(plans)
    stored: list[tuple[Leg, DispatchJob]] = []
    for plan in plans:
        leg = await ctx.repo.get_leg(domain.leg_id(request.request_id, plan.department))
        if leg is None:
            job = rules.first_job(facts, plan, load=load, at=now)
            leg = await ctx.repo.create_leg(Leg.new(job, slot=plan.department, cycle=0))
            crash_point("route.after_leg_stored")
        job = await record_leg(ctx, leg, set_status=True, departments=departments)
        stored.append((leg, job))
    await refresh_summary(ctx, request.request_id)
    # Every leg is recorded, and the request's summary written, before any job goes out: a
    # department's report handled meanwhile is never overwritten by this processing.
    for leg, job in stored:
        await publish_leg(ctx, leg, job, cause=record.envelope)
    END_TO_END_SECONDS.labels("route").observe((now - request.submitted_at).total_seconds())
