"""Notify's handlers: tell the citizen once per (request, event, channel), the per-record way.

Delivery of one message on one channel applies the decisions of services/notify/delivery.py:

1. claim the delivery record (``_id`` = notification id, ``pending``); a record already
   ``sent`` or ``suppressed`` is not sent again, whatever the redelivery;
2. the per-citizen rate limit decides once (the decision is stored on the record);
3. send with the notification id as idempotency key, retried with the shared back-off
   (:class:`shared.retry.Backoff`); a crash after the gateway accepted but before ``sent`` was
   stored resends the same key, which the gateway drops;
4. every attempt's outcome is stored and published on ``help.notifications``; past the last
   attempt the request's timeline shows ``notification_failed`` and the record goes to
   ``help.dlq.notify`` with the reason, through the stage's one dead-letter path (a
   :class:`~shared.stage.PermanentError` once every message of the record was tried).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from services.notify import delivery, domain
from services.notify.channels import Channel, ChannelError, Outbound
from services.notify.repository import NotifyRepository
from shared import requests_store
from shared.envelope import CE_TYPE, event_type, utcnow
from shared.faults import crash_point
from shared.kafka import EventBus
from shared.metrics import NOTIFICATIONS
from shared.phones import e164
from shared.quota import WindowQuota
from shared.schemas import (
    DispatchJob,
    Language,
    LifecycleEvent,
    RejectedRequest,
    ReviewRequest,
    SubmittedRequest,
    VerifiedRequest,
)
from shared.stage import PermanentError, Record
from shared.topics import DISPATCH_TOPICS, Topic

logger = logging.getLogger(__name__)

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
    # How often a delivery is tried, and the back-off between tries.
    policy: delivery.Policy
    # The per-citizen rate limit, shared by every notify process through the database
    # (shared/quota.py: one slot document per admitted message).
    quota: WindowQuota
    # The stage's dead-letter path, for deliveries that have no input record of their own
    # (the survey reminder); handlers raise a PermanentError instead.
    dead_letter: Callable[[Record, PermanentError], Awaitable[None]]
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
    failures = await _notify_all(ctx, notice, language=language, phone=phone, category=category)
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
        failures += await _notify_all(
            ctx, follow_up, language=language, phone=phone, category=category
        )
        if survey.get("answer") is None and not survey.get("closed_at"):
            # One reminder, then closed without answer (services/notify/surveys.py).
            step, due = ctx.survey_timers.first_step(survey["opened_at"])
            await ctx.repo.arm_survey_timer(notice.request_id, step=step, due_at=due)
    dead = delivery.first_dead_letter(failures)
    if dead is not None:
        raise dead


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
    *,
    language: Language,
    phone: str,
    category: str | None,
) -> list[delivery.Failure]:
    """Every channel's message of a notice; the deliveries given up."""
    failures: list[delivery.Failure] = []
    for channel, message in outbound(
        ctx, notice, language=language, phone=phone, category=category
    ):
        failure = await deliver(
            ctx, channel, message, leg=notice.leg, initial_record=notice.initial_record
        )
        if failure is not None:
            failures.append(failure)
    return failures


async def deliver(
    ctx: NotifyContext,
    channel: Channel,
    message: Outbound,
    *,
    leg: str = "",
    initial_record: Mapping[str, Any] | None = None,
) -> delivery.Failure | None:
    """Send one message on one channel at most once (services/notify/delivery.py decides each
    step); a delivery given up is stored and on the timeline, and its failure is returned for
    the caller's record to go to the dead letters."""
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
    step = delivery.on_claim(
        doc,
        reaches_phone=channel.reaches_phone,
        exempt=ctx.rules.rate_limit.exempt(message.event),
    )
    if step == "announce_again":
        await _publish(ctx, message, channel, "sent", attempt=int(doc.get("attempts") or 1))
        return None
    if step == "nothing":
        return None
    if step == "take_slot":
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
            return None
        await ctx.repo.update_delivery(nid, {"admitted": True})
    decision: delivery.Decision | None = None
    async for decision, at in attempts(ctx, channel, message, first=int(doc["attempts"]) + 1):
        sent = isinstance(decision, delivery.Sent)
        entry = delivery.attempt_entry(decision, at)
        await ctx.repo.record_attempt(
            nid,
            attempt=decision.attempt,
            status=entry["status"],
            at=at,
            error=entry["error"],
            fields={"status": "sent", "sent_at": at} if sent else None,
        )
        if sent:
            crash_point("notify.after_mark")
        await _publish(
            ctx, message, channel, entry["status"], attempt=decision.attempt, error=entry["error"]
        )
    if not isinstance(decision, delivery.GiveUp):
        return None
    failure = delivery.failure(
        message, channel.name, error=decision.error, attempts=decision.attempt, at=ctx.clock()
    )
    await ctx.repo.update_delivery(nid, failure.fields)
    await note_failure(ctx, message, failure, initial=initial_record)
    return failure


async def attempts(
    ctx: NotifyContext, channel: Channel, message: Outbound, *, first: int
) -> AsyncIterator[tuple[delivery.Decision, datetime]]:
    """The one send loop: every attempt's decision and time, numbered from ``first``; the
    pause of a :class:`~services.notify.delivery.RetryLater` (the shared back-off) comes after
    the caller has stored and announced it."""
    tries = 0
    while True:
        tries += 1
        attempt = first + tries - 1
        try:
            await channel.send(message)
            crash_point("notify.after_send")
        except ChannelError as exc:
            decision = delivery.after_attempt(
                ctx.policy, attempt=attempt, tries=tries, error=exc.reason, retryable=exc.retryable
            )
        else:
            decision = delivery.Sent(attempt)
        _log_attempt(message, channel, decision)
        yield decision, ctx.clock()
        if not isinstance(decision, delivery.RetryLater):
            return
        await ctx.sleep(decision.delay)


def _log_attempt(message: Outbound, channel: Channel, decision: delivery.Decision) -> None:
    extra = {"request_id": message.request_id, "channel": channel.name, "attempt": decision.attempt}
    if isinstance(decision, delivery.Sent):
        NOTIFICATIONS.labels(channel.name, "sent").inc()
        logger.info("notification sent", extra={**extra, "status": message.event})
    else:
        logger.warning("notification attempt failed", extra={**extra, "error": decision.error})


async def note_failure(
    ctx: NotifyContext,
    message: Outbound,
    failure: delivery.Failure,
    *,
    initial: Mapping[str, Any] | None,
) -> None:
    """A delivery given up, on the request's timeline (``initial`` creates the record when no
    stage wrote it yet) and counted; the dead letter is the stage's."""
    await ctx.repo.record_transition(
        message.request_id,
        failure.transition,
        set_status=False,
        set_on_insert=dict(initial) if initial else None,
    )
    count_failure(message, failure)


def count_failure(message: Outbound, failure: delivery.Failure) -> None:
    """A delivery given up, counted and logged (without the number or the text)."""
    channel = failure.dead_letter.headers["notify_channel"]
    NOTIFICATIONS.labels(channel, "failed").inc()
    logger.error(
        "notification failed after every attempt; dead-lettered",
        extra={
            "request_id": message.request_id,
            "channel": channel,
            "error": failure.fields["error"],
        },
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
    event = delivery.announcement(
        message, channel.name, status, attempt=attempt, at=ctx.clock(), error=error
    )
    await ctx.bus.emit(
        event.topic, event.value, key=event.key, name=event.name, event_id=event.event_id
    )
