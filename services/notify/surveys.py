"""The end of the call-back survey: one reminder, then the request closed without answer.

When a survey goes out, a timer is armed (``survey_timers``, ``_id`` = request id): after
``reminder_after`` the citizen gets one reminder, and after ``close_after`` (both counted from
the survey) a survey still unanswered closes the request as ``closed`` with the reason
``closed_without_answer``, published on ``help.requests.lifecycle`` and recorded on the
timeline. The timers live in the database and are read by a range query on their indexed due
time, so a restart picks up where the last pass stopped. A timer that fires twice repeats
nothing: the reminder is one notification id (sent once per channel, whatever the attempts),
the closing one event id derived from the request; an answered survey stops its timer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

from services.notify import domain, handlers
from services.notify.handlers import NotifyContext
from shared import requests_store
from shared.db import Document
from shared.kafka import effect_id
from shared.metrics import SURVEYS
from shared.schemas import LifecycleEvent
from shared.stage import Record
from shared.topics import Topic

logger = logging.getLogger(__name__)

REMINDER = "survey_reminder"
CLOSED_WITHOUT_ANSWER = "closed_without_answer"
# Where a failed reminder says it came from (it has no input record of its own).
TIMER_ORIGIN = "notify.survey_timer"


def pending(survey: Document | None) -> bool:
    """Whether a survey still waits for its answer."""
    return survey is not None and survey.get("answer") is None and not survey.get("closed_at")


def closing_event_id(request_id: str) -> str:
    return effect_id("survey-expired", request_id)


async def survey_loop(ctx: NotifyContext, *, interval: float) -> None:
    while True:
        await scan(ctx, now=ctx.clock())
        await asyncio.sleep(interval)


async def scan(ctx: NotifyContext, *, now: datetime) -> int:
    """One pass over the due survey timers; returns the number of steps taken."""
    taken = 0
    for timer in await ctx.repo.due_survey_timers(now):
        request_id = str(timer["_id"])
        survey = await ctx.repo.get_survey(request_id)
        if survey is None or survey.get("answer") is not None:
            await ctx.repo.stop_survey_timer(request_id)
            continue
        if timer.get("step") == "remind" and not survey.get("closed_at"):
            await remind(ctx, survey)
            close_at = survey["opened_at"] + ctx.survey_timers.close_after
            await ctx.repo.move_survey_timer(request_id, step="close", due_at=close_at)
        else:
            # Also a close cut short by a crash: published again under the same event id.
            await close_unanswered(ctx, survey, now=now)
            await ctx.repo.stop_survey_timer(request_id)
        taken += 1
    return taken


async def remind(ctx: NotifyContext, survey: Document) -> None:
    """The one reminder, in the citizen's language, with the survey's link."""
    request_id = str(survey["_id"])
    notice = domain.Notice(
        request_id=request_id,
        event=REMINDER,
        category=survey.get("category"),
        language=survey.get("language"),
        phone=None,
        values={},
    )
    language, phone, category = await handlers.who(ctx, notice)
    if phone is None:
        logger.info("no usable phone number: no reminder", extra={"request_id": request_id})
        return
    record = _timer_record(request_id, "remind")
    for channel, message in handlers.outbound(
        ctx, notice, language=language, phone=phone, category=category
    ):
        await handlers.deliver(ctx, channel, message, record=record)
    if not survey.get("reminded_at"):
        await ctx.repo.update_survey(request_id, {"reminded_at": ctx.clock()})
        SURVEYS.labels("reminded").inc()
    logger.info("survey reminder sent", extra={"request_id": request_id})


async def close_unanswered(ctx: NotifyContext, survey: Document, *, now: datetime) -> None:
    """Close the request: on the lifecycle topic and the timeline, and counted."""
    request_id = str(survey["_id"])
    event_id = closing_event_id(request_id)
    at = survey.get("closed_at") or now
    event = LifecycleEvent.model_validate(
        {
            "event_id": event_id,
            "request_id": request_id,
            "status": "closed",
            "at": at,
            "actor": "notify",
            "reason": CLOSED_WITHOUT_ANSWER,
            "team_id": survey.get("team_id"),
            "department": survey.get("department"),
            "category": survey.get("category"),
            "language": survey.get("language") or domain.DEFAULT_LANGUAGE,
        }
    )
    # The survey is marked first: an answer arriving now is refused, not applied after this.
    await ctx.repo.update_survey(request_id, {"closed_at": at, "closed": CLOSED_WITHOUT_ANSWER})
    await ctx.bus.emit(
        Topic.LIFECYCLE, event, key=request_id, name="request.closed", event_id=event_id
    )
    applied = await ctx.repo.record_transition(
        request_id,
        requests_store.transition(
            event_id=event_id,
            status="closed",
            at=at,
            actor="notify",
            reason=CLOSED_WITHOUT_ANSWER,
        ),
        set_status=True,
    )
    if applied:
        SURVEYS.labels(CLOSED_WITHOUT_ANSWER).inc()
    logger.info("request closed without answer", extra={"request_id": request_id})


def _timer_record(request_id: str, step: str) -> Record:
    """What a failed reminder's dead letter carries in place of an input record."""
    value = json.dumps({"request_id": request_id, "step": step}).encode()
    return Record(
        topic=TIMER_ORIGIN,
        partition=-1,
        offset=-1,
        key=request_id.encode(),
        value=value,
        headers={},
        timestamp_ms=0,
    )
