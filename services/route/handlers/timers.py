"""Service-level timers: a leg past a deadline is escalated once, however many route
processes scan the timers.

Every route process runs the scan. Each due deadline (a leg and a kind, ``acknowledge`` or
``resolve``) is *claimed* before it is escalated, by an insert into ``sla_claims`` keyed by
the deadline and a generation number: ``"<leg>|<kind>|1"``. An insert keyed by ``_id`` is
atomic on FerretDB and MongoDB alike, so of two processes that see the same deadline exactly
one gets the claim; the other skips it. (A conditional update would not do on FerretDB 1.x:
it reads, then rewrites, and two connections can both succeed.)

The claim is a lease: a process that dies holding it leaves it unfinished, and once it is
older than the lease (``ROUTE_SLA_CLAIM_LEASE_SECONDS``) the next scan takes the deadline over
with the next generation, ``"<leg>|<kind>|2"`` — again an insert, so again one winner. The
generation is the fencing token: before each publish, the holder checks that no later
generation exists and stops if one does, so a process that was only slow does not race its
successor. A successor repeats the escalation with the same ids; what its predecessor already
published is looked for on the topics (``services/route/published.py``) and not sent again.

When the escalation is complete, ``"<leg>|<kind>|done"`` is inserted: the deadline is settled
even if the breach flag on the leg (an update) was lost to a concurrent write.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from services.route import legs
from services.route.handlers.context import RouteContext
from services.route.handlers.effects import dispatch_leg, emit_lifecycle, new_leg, refresh_summary
from services.route.models import Leg
from services.route.teams import choose_team
from shared.faults import crash_point
from shared.kafka import effect_id
from shared.metrics import SLA_BREACHES
from shared.schemas import DispatchJob
from shared.topics import Topic

logger = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=60)


class SupersededError(Exception):
    """A later generation took the deadline over: this holder stops."""


async def sla_loop(
    ctx: RouteContext, *, interval: float, lease: timedelta = DEFAULT_LEASE, owner: str = ""
) -> None:
    """Escalate legs past their deadlines; the deadlines live in the database, so a restart
    picks up where the last run stopped."""
    while True:
        await scan_deadlines(ctx, now=ctx.clock(), lease=lease, owner=owner)
        await asyncio.sleep(interval)


async def scan_deadlines(
    ctx: RouteContext, *, now: datetime, lease: timedelta = DEFAULT_LEASE, owner: str = ""
) -> int:
    """One pass over the due timers (``services/route/timer_store.py``: only the collections of
    the minutes begun are read); returns the number of breaches this process escalated."""
    escalated = 0
    for timer in await ctx.repo.timers.due(now):
        leg_id = timer.leg_id
        leg = await ctx.repo.get_leg(leg_id)
        if leg is None or not leg.current:
            await ctx.repo.timers.move(timer, None, request_id="", now=now)
            continue
        breached: list[str] = list(leg.breached)
        progress = leg.progress
        for kind in legs.due_breaches(
            now=now,
            progress=progress,
            acknowledge_by=leg.acknowledge_by,
            resolve_by=leg.resolve_by,
            breached=breached,
        ):
            if await ctx.repo.breach_settled(leg_id, kind):
                breached.append(kind)
                continue
            token = await ctx.repo.claim_breach(leg_id, kind, now=now, lease=lease, owner=owner)
            if token is None:
                continue  # another process holds it; the timer stays due until it is settled
            try:
                await _escalate_breach(ctx, leg, kind, token=token, now=now)
            except SupersededError:
                logger.warning(
                    "deadline taken over by a later claim; stopped",
                    extra={"leg_id": leg_id, "kind": kind, "token": token},
                )
                continue
            breached.append(kind)
            escalated += 1
        await ctx.repo.timers.move(
            timer,
            legs.next_due(
                progress=progress,
                acknowledge_by=leg.acknowledge_by,
                resolve_by=leg.resolve_by,
                breached=breached,
            ),
            request_id=leg.request_id,
            now=now,
        )
    return escalated


async def _escalate_breach(
    ctx: RouteContext, leg: Leg, kind: legs.BreachKind, *, token: int, now: datetime
) -> None:
    """One missed deadline: a job for the command centre (unless it is already theirs), an
    ``escalated`` event, the breach flag on the leg. Ids are derived from the leg and the
    kind, so a successor repeats nothing that went out."""
    job = leg.job
    reason = f"sla_{kind}"

    async def fence() -> None:
        if await ctx.repo.breach_superseded(job.leg_id, kind, token):
            raise SupersededError

    crash_point("route.after_breach_claim")
    if job.department != "command":
        team = choose_team(
            ctx.directory, "command", job.location.district, await ctx.repo.team_load()
        )
        oversight = await new_leg(
            ctx,
            leg,
            slot=f"{reason}:{job.leg_id}",
            attempt=1,
            department="command",
            team_id=team.id,
            rule_id=reason,
            reason=f"{reason}: {job.department} team {job.team_id} missed the deadline",
            cycle=leg.cycle,
            blocking=False,
            at=now,
        )
        await fence()
        await dispatch_leg(ctx, oversight, cause=None, set_status=False)
    event_id = effect_id("escalated", job.leg_id, kind)
    await fence()
    if token > 1 and await _escalation_went_out(ctx, job, kind, event_id):
        logger.info(
            "escalation found on the lifecycle topic; not published again",
            extra={"request_id": job.request_id, "leg_id": job.leg_id, "kind": kind},
        )
        await ctx.repo.record_transition(
            job.request_id,
            event_id=event_id,
            status="escalated",
            at=now,
            reason=reason,
            detail={"department": job.department, "team_id": job.team_id, "leg_id": job.leg_id},
        )
    else:
        await emit_lifecycle(
            ctx, leg, status="escalated", event_id=event_id, reason=reason, at=now, cause=None
        )
    crash_point("route.after_escalation")
    if await ctx.repo.mark_breached(leg, kind):
        SLA_BREACHES.labels(kind, job.department, job.priority).inc()
    await ctx.repo.settle_breach(job.leg_id, kind, token=token, at=ctx.clock())
    await refresh_summary(ctx, job.request_id)


async def _escalation_went_out(
    ctx: RouteContext, job: DispatchJob, kind: str, event_id: str
) -> bool:
    """A successor's look for its predecessor's ``escalated`` event (from the first claim)."""
    if ctx.published is None:
        return False
    since = await ctx.repo.first_claim_at(job.leg_id, kind) or job.dispatched_at
    return await ctx.published.contains(Topic.LIFECYCLE, ce_id=event_id, since=since)
