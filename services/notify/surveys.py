"""The call-back survey's answer and its end: one reminder, then the request closed without
answer.

An answer (HTTP, the survey page or a partner's relay) is taken once: stored, counted once,
and the request closed or reopened (:func:`answer_survey`).

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
from typing import Any

from services.notify import delivery, domain, handlers, sending
from services.notify.handlers import NotifyContext
from shared import requests_store
from shared.db import Document
from shared.envelope import CE_TYPE, Envelope, event_type
from shared.kafka import effect_id
from shared.metrics import SURVEYS
from shared.schemas import LifecycleEvent, SurveyAnswer
from shared.stage import PermanentError, Record
from shared.topics import Topic

logger = logging.getLogger(__name__)

SURVEY_ANSWER_TYPE = event_type("survey.answer")
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
    failures: list[delivery.Failure] = []
    for channel, message in handlers.outbound(
        ctx, notice, language=language, phone=phone, category=category
    ):
        failure = await sending.deliver(ctx, channel, message)
        if failure is not None:
            failures.append(failure)
    dead = delivery.first_dead_letter(failures)
    if dead is not None:
        await ctx.dead_letter(record, dead)
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


# --- the answer ---------------------------------------------------------------------------------


class SurveyRefusedError(Exception):
    """An answer that cannot be taken: no survey went out, or a different answer came first."""

    def __init__(self, code: str, message: str, *, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


async def answer_survey(
    ctx: NotifyContext, answer: SurveyAnswer, *, source: str, cause: Envelope | None = None
) -> str:
    """Take the citizen's answer once: count it, and close or reopen the request."""
    request_id = answer.request_id
    survey = await ctx.repo.get_survey(request_id)
    if survey is None:
        raise SurveyRefusedError(
            "no_survey", "No call-back survey was sent for this request.", http_status=404
        )
    if survey.get("closed_at") and survey.get("answer") is None:
        raise SurveyRefusedError(
            "survey_closed",
            "The request was closed without an answer; file a new request if help is needed.",
            http_status=409,
        )
    stored: dict[str, Any] | None = survey.get("answer")
    if stored is not None and bool(stored.get("satisfied")) != answer.satisfied:
        raise SurveyRefusedError(
            "already_answered",
            "This survey was already answered differently.",
            http_status=409,
        )
    now = ctx.clock()
    if stored is None:
        stored = {
            "satisfied": answer.satisfied,
            "comment": answer.comment,
            "answered_at": answer.answered_at or now,
            "source": source,
        }
        await ctx.repo.update_survey(request_id, {"answer": stored})
        await ctx.repo.stop_survey_timer(request_id)
    status, reason = domain.survey_outcome(answer.satisfied)
    if not survey.get("counted"):
        key = domain.satisfaction_key(survey.get("team_id"), survey.get("category"))
        await ctx.repo.count_satisfaction(key, satisfied=answer.satisfied, at=now)
        await ctx.repo.update_survey(request_id, {"counted": True})
        SURVEYS.labels("satisfied" if answer.satisfied else "unsatisfied").inc()
    event_id = effect_id("survey", request_id, status)
    at = stored.get("answered_at") or now
    event = LifecycleEvent.model_validate(
        {
            "event_id": event_id,
            "request_id": request_id,
            "status": status,
            "at": at,
            "actor": "citizen",
            "reason": reason,
            "team_id": survey.get("team_id"),
            "department": survey.get("department"),
            "category": survey.get("category"),
            "language": survey.get("language") or domain.DEFAULT_LANGUAGE,
        }
    )
    # Published on every call with the same event id; consumers skip what they have applied.
    await ctx.bus.emit(
        Topic.LIFECYCLE,
        event,
        key=request_id,
        name=f"request.{status}",
        event_id=event_id,
        cause=cause,
    )
    await ctx.repo.record_transition(
        request_id,
        requests_store.transition(
            event_id=event_id, status=status, at=at, actor="citizen", reason=reason
        ),
        set_status=True,
    )
    logger.info(
        "survey answered", extra={"request_id": request_id, "status": status, "route": source}
    )
    return status


async def handle_partner_inbound(record: Record, *, ctx: NotifyContext) -> None:
    """Survey answers relayed by partners (the 12345 hotline's call-backs); the rest is intake's."""
    if record.headers.get(CE_TYPE) != SURVEY_ANSWER_TYPE:
        return
    answer = record.parse(SurveyAnswer)
    try:
        await answer_survey(ctx, answer, source="partner", cause=record.envelope)
    except SurveyRefusedError as exc:
        raise PermanentError(exc.code, exc.message) from exc
