"""Notify, a batch at a time: decide every message from the events alone, claim them all in
one insert, send them concurrently, then store their outcomes in one insert.

A delivery in the batch path:

1. the claim (the guard: ``notification_claims``, keyed by the notification id) — a claim that
   exists already means another processing took this message, and the record goes through the
   per-record path (:func:`services.notify.handlers.handle_event`), which reads the delivery
   record and sends only what is not ``sent`` (the gateway drops a repeated key);
2. the per-citizen rate limit, counted in this process's memory (per phone hash and window);
3. the send, with the notification id as idempotency key, retried with the configured
   back-off; every attempt is published on ``help.notifications``;
4. the delivery record, inserted with its final status and attempt log (``notifications``);
   past the last attempt, the failure goes the per-record way (dead letter, timeline).

Events that need the request record (no contact in the event) and the survey that follows a
resolution take the per-record path.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
class RecentCounts:
    """Messages per phone hash and rate-limit window, counted in memory (bounded)."""

    limit: int = 200_000
    _counts: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def take(self, key: str) -> int:
        """Count one more message in the window; the count including it."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self.limit:
            self._counts.popitem(last=False)
        return count


async def plan_events(
    records: Sequence[Record], *, ctx: NotifyContext, counts: RecentCounts
) -> list[Outcome]:
    """Plans for a batch of the events the citizen hears about."""
    outcomes: list[Outcome] = []
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
    return outcomes


def messages(
    notice: domain.Notice, record: Record, *, ctx: NotifyContext, counts: RecentCounts
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
    outbound = [
        (channel, message, _admitted(ctx, channel, notice, phone_hash, counts))
        for channel, message in messages
    ]
    fields = {"leg": notice.leg, "phone_hash": phone_hash, "created_at": now}
    return Plan(
        guards=guards,
        act=partial(_deliver_all, ctx, record, outbound, fields, notice.initial_record),
    )


def _admitted(
    ctx: NotifyContext,
    channel: Channel,
    notice: domain.Notice,
    phone_hash: str,
    counts: RecentCounts,
) -> bool:
    limit = ctx.rules.rate_limit
    if not channel.reaches_phone or limit.exempt(notice.event):
        return True
    return limit.admits(counts.take(limit.window_key(phone_hash, ctx.clock())))


async def _deliver_all(
    ctx: NotifyContext,
    record: Record,
    outbound: list[tuple[Channel, Outbound, bool]],
    fields: Document,
    initial: Mapping[str, Any] | None,
) -> Plan:
    """Send the claimed messages (one after the other per request: channels are few) and plan
    what to store and announce about them."""
    documents: list[Insert] = []
    events: list[Event] = []
    for channel, message, admitted in outbound:
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
