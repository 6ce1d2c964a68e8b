"""Delivery of one message on one channel, applying the decisions of
services/notify/delivery.py:

1. claim the delivery record (``_id`` = notification id, ``pending``); a record already
   ``sent`` or ``suppressed`` is not sent again, whatever the redelivery;
2. the per-citizen rate limit decides once (the decision is stored on the record);
3. send with the notification id as idempotency key, retried with the shared back-off
   (:class:`shared.retry.Backoff`); a crash after the gateway accepted but before ``sent`` was
   stored resends the same key, which the gateway drops;
4. every attempt's outcome is stored and published on ``help.notifications``; past the last
   attempt the request's timeline shows ``notification_failed`` and the failure is returned
   for the caller's record to go to the dead letters.

The per-record path (handlers.py) uses all of it; the batch path (plans.py) the send loop
:func:`attempts` and :func:`count_failure`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.notify import delivery, domain
from services.notify.channels import Channel, ChannelError, Outbound
from shared.faults import crash_point
from shared.metrics import NOTIFICATIONS

if TYPE_CHECKING:
    from services.notify.handlers import NotifyContext

logger = logging.getLogger(__name__)


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
        # The batch path's claim may have won a slot for this message already.
        admitted = await ctx.repo.claimed_slot(nid) is not None
        if not admitted:
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
    if isinstance(decision, delivery.Sent):
        NOTIFICATIONS.labels(channel.name, "sent").inc()
        # DEBUG, not INFO: a line per message costs a surge more than its bookkeeping, and
        # cityhelp_notifications_total counts the sent ones (as intake does for requests).
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "notification sent",
                extra={**_attempt_fields(message, channel, decision), "status": message.event},
            )
    else:
        logger.warning(
            "notification attempt failed",
            extra={**_attempt_fields(message, channel, decision), "error": decision.error},
        )


def _attempt_fields(
    message: Outbound, channel: Channel, decision: delivery.Decision
) -> dict[str, object]:
    return {"request_id": message.request_id, "channel": channel.name, "attempt": decision.attempt}


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
