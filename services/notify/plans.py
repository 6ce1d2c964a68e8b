"""Notify, a batch at a time: decide every message from the events alone, claim them all in
one insert, send them concurrently, then store their outcomes in one insert.

A delivery in the batch path:

1. the claim (the guard: ``notification_claims``, keyed by the notification id), which carries
   the message's slot of the per-citizen rate limit when it counts against it
   (:meth:`shared.quota.WindowQuota.propose`: the next slot of the phone's window, unique
   across every notify process by an index on ``slot``). A claim that cannot be inserted —
   another processing took this message, or another process the slot — sends the record
   through the per-record path (:func:`services.notify.handlers.handle_event`), which reads the
   delivery record, sends only what is not ``sent`` (the gateway drops a repeated key), and
   takes a slot there unless the message's claim holds one;
2. a message whose phone has no slot left in the window is stored ``suppressed``;
3. the send, with the notification id as idempotency key, retried with the shared back-off
   (the one send loop, :func:`services.notify.sending.attempts`, deciding by
   services/notify/delivery.py); every attempt is published on ``help.notifications``;
4. the delivery record, inserted with its final status and attempt log (``notifications``,
   packed: :func:`services.notify.repository.packed_delivery`);
   past the last attempt it is stored ``failed``, the request's timeline shows
   ``notification_failed`` and the plan dead-letters the record (the stage's dead letters).

Events that need the request record (no contact in the event) and the survey that follows a
resolution take the per-record path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from services.notify import delivery, domain, handlers, sending
from services.notify.channels import Channel, Outbound
from services.notify.handlers import NotifyContext, parse_notice
from services.notify.repository import CLAIMS, NOTIFICATIONS, packed_delivery
from shared import requests_store
from shared.db import Document
from shared.metrics import NOTIFICATIONS as SENT
from shared.plans import DEFER, Event, Insert, Outcome, Plan, Update, Write, take_turns
from shared.stage import PermanentError, Record

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One message of a plan, and whether the rate limit admits it."""

    channel: Channel
    message: Outbound
    admitted: bool = True


async def plan_events(records: Sequence[Record], *, ctx: NotifyContext) -> list[Outcome]:
    """Plans for a batch of the events the citizen hears about, from memory: each counted
    message's rate-limit slot is proposed here and won by its claim's insert."""
    outcomes: list[Outcome] = []
    for index, record in enumerate(records):
        await take_turns(index)
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
            outcomes.append(messages(notice, record, ctx=ctx))
    return outcomes


def messages(notice: domain.Notice, record: Record, *, ctx: NotifyContext) -> Outcome:
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
    limit = ctx.rules.rate_limit
    outbound: list[Delivery] = []
    guards: list[Insert] = []
    for channel, message in messages:
        claim: Document = {"_id": message.notification_id, "claimed_at": now}
        one = Delivery(channel, message)
        if channel.reaches_phone and not limit.exempt(notice.event):
            slot = ctx.quota.propose(phone_hash, now, owner=message.notification_id)
            if isinstance(slot, str):
                claim["slot"] = slot  # won with the claim
            else:
                one.admitted = slot
        outbound.append(one)
        guards.append(Insert(CLAIMS, claim))
    fields = {"leg": notice.leg, "phone_hash": phone_hash, "created_at": now}
    return Plan(
        guards=tuple(guards),
        act=partial(_deliver_all, ctx, outbound, fields, notice.initial_record),
    )


async def _deliver_all(
    ctx: NotifyContext,
    outbound: list[Delivery],
    fields: Document,
    initial: Mapping[str, Any] | None,
) -> Plan:
    """Send the claimed messages (one after the other per request: channels are few) and plan
    what to store and announce about them."""
    documents: list[Write] = []
    events: list[Event] = []
    failures: list[delivery.Failure] = []
    for planned in outbound:
        channel, message = planned.channel, planned.message
        base: Document = {
            "_id": message.notification_id,
            "request_id": message.request_id,
            "event": message.event,
            "channel": channel.name,
            "language": message.language,
            **fields,
        }
        if not planned.admitted:
            SENT.labels(channel.name, "suppressed").inc()
            documents.append(
                Insert(
                    NOTIFICATIONS,
                    packed_delivery(
                        {**base, "status": "suppressed", "reason": "rate_limited", "attempts": 0}
                    ),
                )
            )
            continue
        log: list[Document] = []
        decision: delivery.Decision | None = None
        async for decision, at in sending.attempts(ctx, channel, message, first=1):
            entry = delivery.attempt_entry(decision, at)
            log.append(entry)
            events.append(
                delivery.announcement(
                    message,
                    channel.name,
                    entry["status"],
                    attempt=decision.attempt,
                    at=at,
                    error=entry["error"],
                )
            )
        at = log[-1]["at"]
        if isinstance(decision, delivery.GiveUp):
            failure = delivery.failure(
                message, channel.name, error=decision.error, attempts=len(log), at=ctx.clock()
            )
            sending.count_failure(message, failure)
            failures.append(failure)
            documents.append(_on_timeline(message, failure, initial))
            documents.append(
                Insert(
                    NOTIFICATIONS,
                    packed_delivery(
                        {**base, **failure.fields, "attempts": len(log), "attempt_log": log}
                    ),
                )
            )
            continue
        documents.append(
            Insert(
                NOTIFICATIONS,
                packed_delivery(
                    {
                        **base,
                        "status": "sent",
                        "admitted": True,
                        "attempts": len(log),
                        "attempt_log": log,
                        "sent_at": at,
                        "updated_at": at,
                    }
                ),
            )
        )
    return Plan(
        writes=tuple(documents),
        events=tuple(events),
        dead=delivery.first_dead_letter(failures),
    )


def _on_timeline(
    message: Outbound, failure: delivery.Failure, initial: Mapping[str, Any] | None
) -> Update:
    """The delivery given up on the request's timeline (``notification_failed``, the status
    unchanged); ``initial`` creates the record when no stage wrote it yet."""
    where, update = requests_store.transition_write(
        message.request_id,
        failure.transition,
        set_fields={},
        set_on_insert=dict(initial) if initial else None,
        set_status=False,
    )
    return Update(requests_store.COLLECTION, where, update, upsert=initial is not None)
