"""Notify's handlers: tell the citizen once per (request, event, channel); run the call-back.

Delivery of one message on one channel:

1. claim the delivery record (``_id`` = notification id, ``pending``); a record already
   ``sent`` or ``suppressed`` is not sent again, whatever the redelivery;
2. the per-citizen rate limit decides once (the decision is stored on the record);
3. send with the notification id as idempotency key, retrying with exponential back-off; a
   crash after the gateway accepted but before ``sent`` was stored resends the same key, which
   the gateway drops;
4. every attempt's outcome is stored and published on ``help.notifications``; past the last
   attempt the message goes to ``help.dlq.notify`` with the reason and the request's timeline
   shows ``notification_failed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.notify import domain
from services.notify.channels import Channel, ChannelError, Outbound
from services.notify.repository import NotifyRepository
from shared import requests_store
from shared.envelope import CE_TYPE, Envelope, event_type, utcnow
from shared.faults import crash_point
from shared.kafka import EventBus, effect_id
from shared.metrics import DEAD_LETTERS, NOTIFICATIONS, SURVEYS
from shared.phones import e164
from shared.plans import Event
from shared.quota import WindowQuota
from shared.schemas import (
    DispatchJob,
    Language,
    LifecycleEvent,
    NotificationRecord,
    RejectedRequest,
    ReviewRequest,
    SubmittedRequest,
    SurveyAnswer,
    VerifiedRequest,
)
from shared.stage import PermanentError, Record, dead_letter_headers
from shared.topics import DISPATCH_TOPICS, Topic

logger = logging.getLogger(__name__)

SURVEY_ANSWER_TYPE = event_type("survey.answer")
INFO_ADDED_TYPE = event_type("leg.info_added")
LANGUAGES: tuple[Language, ...] = ("zh", "en", "ru")


@dataclass(frozen=True)
class NotifyContext:
    bus: EventBus
    repo: NotifyRepository
    channels: list[Channel]
    rules: domain.Rules
    templates: Mapping[str, str]
    public_base_url: str
    survey_base_url: str
    phone_hash_key: str
    retry_delays: list[float]
    # The per-citizen rate limit, shared by every notify process through the database
    # (shared/quota.py: one slot document per admitted message).
    quota: WindowQuota
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    survey_timers: domain.SurveyTimers = field(
        default=domain.SurveyTimers(timedelta(hours=24), timedelta(hours=72))
    )
    info_base_url: str = "http://127.0.0.1:8082"
    # Key that signs survey links (the survey page takes answers only through a signed link).
    survey_link_secret: str = ""


def _on(topic: str, *candidates: Topic) -> bool:
    """Whether ``topic`` (with any test prefix) is one of ``candidates``."""
    return any(topic == c.value or topic.endswith(f".{c.value}") for c in candidates)


def parse_notice(record: Record, ctx: NotifyContext) -> domain.Notice | None:
    """What this record means for the citizen; None when it tells them nothing."""
    topic = record.topic
    if _on(topic, Topic.SUBMITTED, Topic.SUBMITTED_PRIORITY):
        submitted = record.parse(SubmittedRequest)
        notice = domain.from_submitted(submitted, ctx.rules, public_base_url=ctx.public_base_url)
        # Notify may hear of a request before intake's write lands: a failure noted on the
        # timeline then creates the record exactly as intake (or verify) would.
        return replace(notice, initial_record=requests_store.initial_document(submitted))
    if _on(topic, Topic.VERIFIED, Topic.VERIFIED_PRIORITY):
        return domain.from_verified(record.parse(VerifiedRequest))
    if _on(topic, Topic.REVIEW):
        return domain.from_review(record.parse(ReviewRequest), ctx.rules)
    if _on(topic, Topic.REJECTED):
        return domain.from_rejected(record.parse(RejectedRequest), ctx.rules)
    if _on(topic, *DISPATCH_TOPICS):
        if record.headers.get(CE_TYPE) == INFO_ADDED_TYPE:
            return None  # the citizen's own addition, for the department
        return domain.from_dispatch(record.parse(DispatchJob), ctx.rules)
    if _on(topic, Topic.LIFECYCLE):
        change = domain.from_lifecycle(record.parse(LifecycleEvent), ctx.rules)
        if change is not None and change.event == "needs_info":
            link = domain.info_link(ctx.info_base_url, change.request_id)
            change = replace(change, values={**change.values, "info_link": link})
        return change
    raise PermanentError("unknown_topic", topic)


async def handle_event(record: Record, *, ctx: NotifyContext) -> None:
    notice = parse_notice(record, ctx)
    if notice is None:
        return
    language, phone, category = await who(ctx, notice)
    if phone is None:
        logger.info(
            "no usable phone number: nothing sent",
            extra={"request_id": notice.request_id, "event": notice.event},
        )
        return
    await _notify_all(ctx, notice, record, language=language, phone=phone, category=category)
    if notice.event in ctx.rules.survey_after:
        survey = await ctx.repo.open_survey(
            notice.request_id,
            {
                "request_id": notice.request_id,
                "team_id": notice.team_id,
                "department": notice.department,
                "category": category,
                "language": language,
                "opened_at": ctx.clock(),
                "after": notice.event,
            },
        )
        follow_up = domain.Notice(
            request_id=notice.request_id,
            event=domain.SURVEY,
            category=survey.get("category") or category,
            language=language,
            phone=phone,
            values={},
        )
        await _notify_all(ctx, follow_up, record, language=language, phone=phone, category=category)
        if survey.get("answer") is None and not survey.get("closed_at"):
            # One reminder, then closed without answer (services/notify/surveys.py).
            step, due = ctx.survey_timers.first_step(survey["opened_at"])
            await ctx.repo.arm_survey_timer(notice.request_id, step=step, due_at=due)


async def who(ctx: NotifyContext, notice: domain.Notice) -> tuple[Language, str | None, str | None]:
    """Language, phone and category: from the event, else from the request record. The phone
    is None when the citizen gave one no message can reach (verify rejects the request)."""
    language, phone, category = notice.language, notice.phone, notice.category
    if language is None or phone is None or category is None:
        doc = await ctx.repo.get_request(notice.request_id) or {}
        stored_language = doc.get("language")
        if language is None and stored_language in LANGUAGES:
            language = stored_language
        if phone is None:
            contact = doc.get("contact") or {}
            raw = doc.get("phone_normalised") or contact.get("phone")
            if not isinstance(raw, str) or not raw:
                raise PermanentError(
                    "no_contact", "neither the event nor the request record has one"
                )
            phone = e164(raw, ctx.rules.jurisdiction)
        category = category or doc.get("category")
    return language or domain.DEFAULT_LANGUAGE, phone, category


def outbound(
    ctx: NotifyContext,
    notice: domain.Notice,
    *,
    language: Language,
    phone: str,
    category: str | None,
) -> list[tuple[Channel, Outbound]]:
    """The message of a notice on every channel, in the citizen's language (none without a
    template for the event)."""
    name = domain.choose_template(ctx.templates, notice.event, category, language)
    if name is None:
        logger.warning(
            "no template for this event; nothing sent",
            extra={"request_id": notice.request_id, "status": notice.event},
        )
        return []
    values = domain.message_values(
        notice,
        language,
        ctx.rules,
        survey_base_url=ctx.survey_base_url,
        survey_secret=ctx.survey_link_secret,
    )
    text = domain.render(ctx.templates[name], values)
    return [
        (
            channel,
            Outbound(
                notification_id=domain.notification_id(
                    notice.request_id, notice.event, channel.name, notice.leg
                ),
                request_id=notice.request_id,
                event=notice.event,
                language=language,
                phone=phone,
                text=text,
            ),
        )
        for channel in ctx.channels
    ]


async def _notify_all(
    ctx: NotifyContext,
    notice: domain.Notice,
    record: Record,
    *,
    language: Language,
    phone: str,
    category: str | None,
) -> None:
    for channel, message in outbound(
        ctx, notice, language=language, phone=phone, category=category
    ):
        await deliver(
            ctx,
            channel,
            message,
            record=record,
            leg=notice.leg,
            initial_record=notice.initial_record,
        )


async def deliver(
    ctx: NotifyContext,
    channel: Channel,
    message: Outbound,
    *,
    record: Record,
    leg: str = "",
    initial_record: Mapping[str, Any] | None = None,
) -> str:
    """Send one message on one channel at most once; returns the delivery's final status."""
    nid = message.notification_id
    now = ctx.clock()
    phone_hash = domain.phone_hash(ctx.phone_hash_key, message.phone)
    doc = await ctx.repo.claim(
        notification_id=nid,
        fields={
            "request_id": message.request_id,
            "event": message.event,
            "channel": channel.name,
            "language": message.language,
            "leg": leg,
            "phone_hash": phone_hash,
        },
        at=now,
    )
    crash_point("notify.after_claim")
    status = str(doc.get("status"))
    if status == "sent":
        # Announce again with the same event id: covers a crash between storing and publishing.
        await _publish(ctx, message, channel, "sent", attempt=int(doc.get("attempts") or 1))
        return status
    if status == "suppressed":
        return status
    if channel.reaches_phone and not doc.get("admitted"):
        limit = ctx.rules.rate_limit
        if not limit.exempt(message.event):
            [admitted] = await ctx.quota.take_many([phone_hash], now)
            if not admitted:
                await ctx.repo.update_delivery(
                    nid, {"status": "suppressed", "reason": "rate_limited", "updated_at": now}
                )
                NOTIFICATIONS.labels(channel.name, "suppressed").inc()
                logger.info(
                    "notification suppressed by the per-citizen rate limit",
                    extra={"request_id": message.request_id, "channel": channel.name},
                )
                return "suppressed"
        await ctx.repo.update_delivery(nid, {"admitted": True})
    return await _send_with_retries(
        ctx, channel, message, record, first=int(doc["attempts"]) + 1, initial=initial_record
    )


async def _send_with_retries(
    ctx: NotifyContext,
    channel: Channel,
    message: Outbound,
    record: Record,
    *,
    first: int,
    initial: Mapping[str, Any] | None,
) -> str:
    nid = message.notification_id
    error = "not_attempted"
    tries = len(ctx.retry_delays) + 1
    for i in range(tries):
        attempt = first + i
        try:
            await channel.send(message)
            crash_point("notify.after_send")
        except ChannelError as exc:
            error = exc.reason
            await ctx.repo.record_attempt(
                nid, attempt=attempt, status="failed", at=ctx.clock(), error=error
            )
            await _publish(ctx, message, channel, "failed", attempt=attempt, error=error)
            logger.warning(
                "notification attempt failed",
                extra={
                    "request_id": message.request_id,
                    "channel": channel.name,
                    "attempt": attempt,
                    "error": error,
                },
            )
            if not exc.retryable or i == tries - 1:
                break
            await ctx.sleep(ctx.retry_delays[i])
            continue
        at = ctx.clock()
        await ctx.repo.record_attempt(
            nid,
            attempt=attempt,
            status="sent",
            at=at,
            error=None,
            fields={"status": "sent", "sent_at": at},
        )
        crash_point("notify.after_mark")
        await _publish(ctx, message, channel, "sent", attempt=attempt)
        NOTIFICATIONS.labels(channel.name, "sent").inc()
        logger.info(
            "notification sent",
            extra={
                "request_id": message.request_id,
                "channel": channel.name,
                "status": message.event,
                "attempt": attempt,
            },
        )
        return "sent"
    await give_up(ctx, channel, message, record, error=error, attempts=first + i, initial=initial)
    return "failed"


async def give_up(
    ctx: NotifyContext,
    channel: Channel,
    message: Outbound,
    record: Record,
    *,
    error: str,
    attempts: int,
    initial: Mapping[str, Any] | None,
    log: list[dict[str, Any]] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Past the last attempt: failed on the record, on the timeline and in the dead letters.
    ``fields`` (with the attempt ``log``) creates the delivery record when none was stored
    while sending (the batch path stores it once, with its outcome)."""
    nid = message.notification_id
    now = ctx.clock()
    failed = {"status": "failed", "error": error, "failed_at": now}
    if fields is None:
        await ctx.repo.update_delivery(nid, failed)
    else:
        await ctx.repo.store_delivery(
            {**fields, **failed, "attempts": attempts, "attempt_log": log or []}
        )
    await ctx.repo.record_transition(
        message.request_id,
        requests_store.transition(
            event_id=effect_id("notify-failed", nid),
            status="notification_failed",
            at=now,
            actor="notify",
            reason=f"{channel.name}:{message.event}:{error}",
            detail={"notification_id": nid, "channel": channel.name, "event": message.event},
        ),
        set_status=False,
        set_on_insert=dict(initial) if initial else None,
    )
    headers = dead_letter_headers(
        record,
        service="notify",
        reason="delivery_failed",
        detail=f"{channel.name}:{message.event}:{error}",
        attempts=attempts,
        at=now,
    )
    headers.update(
        {
            "notification_id": nid,
            "notify_channel": channel.name,
            "notify_event": message.event,
        }
    )
    await ctx.bus.emit_raw(Topic.DLQ_NOTIFY, record.value, key=record.key, headers=headers)
    DEAD_LETTERS.labels("notify", Topic.DLQ_NOTIFY.value, "delivery_failed").inc()
    NOTIFICATIONS.labels(channel.name, "failed").inc()
    logger.error(
        "notification failed after every attempt; dead-lettered",
        extra={"request_id": message.request_id, "channel": channel.name, "error": error},
    )


def announcement(
    message: Outbound,
    channel: Channel,
    status: str,
    *,
    attempt: int,
    at: datetime,
    error: str | None = None,
) -> Event:
    """One attempt's outcome as announced on ``help.notifications`` (id from its cause)."""
    outcome = NotificationRecord.model_validate(
        {
            "notification_id": message.notification_id,
            "request_id": message.request_id,
            "event": message.event,
            "channel": channel.name,
            "status": status,
            "language": message.language,
            "attempt": attempt,
            "at": at,
            "error": error,
        }
    )
    return Event(
        Topic.NOTIFICATIONS,
        outcome,
        key=message.request_id,
        name=f"notification.{status}",
        event_id=effect_id("notification", message.notification_id, str(attempt), status),
    )


async def _publish(
    ctx: NotifyContext,
    message: Outbound,
    channel: Channel,
    status: str,
    *,
    attempt: int,
    error: str | None = None,
) -> None:
    event = announcement(message, channel, status, attempt=attempt, at=ctx.clock(), error=error)
    await ctx.bus.emit(
        event.topic, event.value, key=event.key, name=event.name, event_id=event.event_id
    )


# --- call-back survey -------------------------------------------------------------------------


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
