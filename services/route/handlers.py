"""Route's handlers: plan the legs, store them, dispatch each exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.route import domain
from services.route.repository import RouteRepository
from shared.envelope import utcnow
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS, REQUESTS
from shared.schemas import DispatchJob, Priority, VerifiedRequest
from shared.stage import Record
from shared.topics import dispatch_topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouteContext:
    bus: EventBus
    repo: RouteRepository
    rules: domain.Rules
    levels: dict[Priority, domain.ServiceLevel]


async def handle_verified(record: Record, *, ctx: RouteContext) -> None:
    request = record.parse(VerifiedRequest)
    now = utcnow()
    legs = domain.plan(request, ctx.rules)
    departments = sorted({leg.department for leg in legs})
    for leg in legs:
        planned = domain.dispatch_job(request, leg, rules=ctx.rules, levels=ctx.levels, at=now)
        stored = await ctx.repo.create_leg(planned)
        # On a redelivery the first stored job (same deadlines) is what goes out, if it has not.
        job = DispatchJob.model_validate(stored["job"])
        if not stored.get("published"):
            await ctx.bus.emit(
                dispatch_topic(job.department),
                job,
                key=job.request_id,
                name="leg.dispatched",
                event_id=effect_id("dispatch", job.leg_id),
                cause=record.envelope,
            )
            await ctx.repo.mark_published(job.leg_id, now)
        await ctx.repo.record_dispatched(
            job, event_id=effect_id("dispatch", job.leg_id), departments=departments
        )
        REQUESTS.labels(
            "dispatched", job.category, job.priority, job.location.district or "unknown"
        ).inc()
        logger.info(
            "leg dispatched",
            extra={
                "request_id": job.request_id,
                "leg_id": job.leg_id,
                "department": job.department,
            },
        )
    END_TO_END_SECONDS.labels("route").observe((now - request.submitted_at).total_seconds())
