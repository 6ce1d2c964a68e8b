"""Notify, a batch at a time: decide every message from the events alone, claim them all in
one insert, send them concurrently, then store their outcomes in one insert.

A delivery in the batch path:

1. the claim (the guard: ``notification_claims``, keyed by the notification id) — a claim that
   exists already means another processing took this message, and the record goes through the
   per-record path (:func:`services.notify.handlers.handle_event`), which reads the delivery
   record and sends only what is not ``sent`` (the gateway drops a repeated key);
2. the per-citizen rate limit, shared by every notify process: one slot per admitted message,
   claimed by inserts for the whole batch at once (:class:`shared.quota.WindowQuota`);
3. the send, with the notification id as idempotency key, retried with the configured
   back-off; every attempt is published on ``help.notifications``;
4. the delivery record, inserted with its final status and attempt log (``notifications``);
   past the last attempt, the failure goes the per-record way (dead letter, timeline).

Events that need the request record (no contact in the event) and the survey that follows a
resolution take the per-record path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from services.notify import domain, handlers
from services.notify.channels import Channel, ChannelError, Outbound
from services.notify.handlers import NotifyContext, parse_notice
from services.notify.repository import CLAIMS, NOTIFICATIONS
from shared.db import Document
from shared.faults import crash_point
from shared.metrics import NOTIFICATIONS as SENT
from shared.plans import DEFER, Event, Insert, Outcome, Plan
from shared.stage import PermanentError, Record

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One message of a plan; ``counted`` (a phone hash) until the rate limit has decided."""

    channel: Channel
    message: Outbound
    admitted: bool = True
    counted: str | None = None


async def plan_events(records: Sequence[Record], *, ctx: NotifyContext) -> list[Outcome]:
    """Plans for a batch of the events the citizen hears about; the rate limit decides the
    batch's messages together (one claim of slots for all of them)."""
    outcomes: list[Outcome] = []
    counts: list[Delivery] = []
    for record in records:
        try:
            notice = parse_notice(record, ctx)
        except PermanentError as exc:
            outcomes.append(exc)
            continue
        if notice is None:
            outcomes.append(None)
        elif (
            notice.phone is None
            or notice.language is None
            or notice.category is None
            or notice.event in ctx.rules.survey_after
        ):
            outcomes.append(DEFER)
        else:
            outcomes.append(messages(notice, record, ctx=ctx, counts=counts))
    if counts:
        answers = await ctx.quota.take_many([d.counted or "" for d in counts], ctx.clock())
        for delivery, admitted in zip(counts, answers, strict=True):
            delivery.admitted = admitted
    return outcomes


def messages(
    notice: domain.Notice, record: Record, *, ctx: NotifyContext, counts: list[Delivery]
) -> Outcome:
    """One message per channel for a notice whose event carries the contact."""
    phone, language = notice.phone, notice.language
    if phone is None or language is None:
        return DEFER  # the request record has them: the per-record path reads it
    messages = handlers.outbound(
        ctx, notice, language=language, phone=phone, category=notice.category
    )
    if not messages:
        return None
    now = ctx.clock()
    phone_hash = domain.phone_hash(ctx.phone_hash_key, phone)
    guards = tuple(
        Insert(CLAIMS, {"_id": message.notification_id, "claimed_at": now})
        for _, message in messages
    )
    limit = ctx.rules.rate_limit
    outbound = [Delivery(channel, message) for channel, message in messages]
    for delivery in outbound:
        if delivery.channel.reaches_phone and not limit.exempt(notice.event):
            delivery.counted = phone_hash
            counts.append(delivery)
    fields = {"leg": notice.leg, "phone_hash": phone_hash, "created_at": now}
    return Plan(
        guards=guards,
        act=partial(_deliver_all, ctx, record, outbound, fields, notice.initial_record),
    )


async def _deliver_all(
    ctx: NotifyContext,
    record: Record,
    outbound: list[Delivery],
    fields: Document,
    initial: Mapping[str, Any] | None,
) -> Plan:
    """Send the claimed messages (one after the other per request: channels are few) and plan
    what to store and announce about them."""
    documents: list[Insert] = []
    events: list[Event] = []
    for delivery in outbound:
        channel, message, admitted = delivery.channel, delivery.message, delivery.admitted
        base: Document = {
            "_id": message.notification_id,
            "request_id": message.request_id,
            "event": message.event,
            "channel": channel.name,
            "language": message.language,
            **fields,
        }
        if not admitted:
            SENT.labels(channel.name, "suppressed").inc()
            documents.append(
                Insert(
                    NOTIFICATIONS,
                    {**base, "status": "suppressed", "reason": "rate_limited", "attempts": 0},
                )
            )
            continue
        log, sent = await _send(ctx, channel, message)
        events.extend(
            handlers.announcement(
                message,
                channel,
                str(entry["status"]),
                attempt=int(entry["attempt"]),
                at=entry["at"],
                error=entry["error"],
            )
            for entry in log
        )
        if not sent:
            # Past the last attempt: stored, dead-lettered and on the timeline the one way.
            await handlers.give_up(
                ctx,
                channel,
                message,
                record,
                error=str(log[-1]["error"]),
                attempts=len(log),
                initial=initial,
                log=log,
                fields=base,
            )
            continue
        SENT.labels(channel.name, "sent").inc()
        at = log[-1]["at"]
        documents.append(
            Insert(
                NOTIFICATIONS,
                {
                    **base,
                    "status": "sent",
                    "admitted": True,
                    "attempts": len(log),
                    "attempt_log": log,
                    "sent_at": at,
                    "updated_at": at,
                },
            )
        )
    return Plan(writes=tuple(documents), events=tuple(events))


async def _send(
    ctx: NotifyContext, channel: Channel, message: Outbound
) -> tuple[list[Document], bool]:
    """Every attempt's outcome, and whether the last one was accepted."""
    log: list[Document] = []
    tries = len(ctx.retry_delays) + 1
    for i in range(tries):
        try:
            await channel.send(message)
            crash_point("notify.after_send")
        except ChannelError as exc:
            log.append(_attempt(i + 1, "failed", ctx.clock(), exc.reason))
            if not exc.retryable or i == tries - 1:
                return log, False
            await ctx.sleep(ctx.retry_delays[i])
            continue
        log.append(_attempt(i + 1, "sent", ctx.clock(), None))
        return log, True
    return log, False


def _attempt(number: int, status: str, at: datetime, error: str | None) -> Document:
    return {"attempt": number, "status": status, "at": at, "error": error}
