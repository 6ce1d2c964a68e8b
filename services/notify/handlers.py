"""Notify's handlers: tell the citizen once per (request, event, channel), the per-record way.

A record becomes a notice, the notice a message per channel, and each message is delivered at
most once by :func:`services.notify.sending.deliver`; past the last attempt the record goes to
``help.dlq.notify`` with the reason, through the stage's one dead-letter path (a
:class:`~shared.stage.PermanentError` once every message of the record was tried).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.notify import delivery, domain, sending
from services.notify.channels import Channel, Outbound
from services.notify.repository import NotifyRepository
from shared import requests_store
from shared.envelope import CE_TYPE, event_type, utcnow
from shared.kafka import EventBus
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
    """Language, phone and category: from the event, else from the request record (for a
    notice from a submission whose record is not written yet, the record it creates). The
    phone is None when the citizen gave one no message can reach (verify rejects the
    request)."""
    language, phone, category = notice.language, notice.phone, notice.category
    if language is None or phone is None or category is None:
        stored = await ctx.repo.get_request(notice.request_id)
        doc = stored or dict(notice.initial_record or {})
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
        failure = await sending.deliver(
            ctx, channel, message, leg=notice.leg, initial_record=notice.initial_record
        )
        if failure is not None:
            failures.append(failure)
    return failures
