"""Notify's handlers: one message per (request, event, channel), recorded and published."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from services.notify import domain
from services.notify.channels import Channel
from services.notify.repository import NotifyRepository
from shared.envelope import utcnow
from shared.kafka import EventBus, effect_id
from shared.metrics import END_TO_END_SECONDS
from shared.schemas import Language, NotificationRecord
from shared.stage import PermanentError, Record
from shared.topics import Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotifyContext:
    bus: EventBus
    repo: NotifyRepository
    channels: list[Channel]
    public_base_url: str


async def handle_lifecycle(record: Record, *, ctx: NotifyContext) -> None:
    event = domain.event_for(record.topic)
    if event is None:
        raise PermanentError("unknown_topic", record.topic)
    try:
        value = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PermanentError("invalid_json", str(exc)) from exc
    if not isinstance(value, dict) or not isinstance(value.get("request_id"), str):
        raise PermanentError("schema_violation", "no request_id")
    request_id: str = value["request_id"]
    language: Language = value.get("language") or value.get("request", {}).get("language") or "zh"
    contact = value.get("contact") or value.get("request", {}).get("contact") or {}
    phone = str(contact.get("phone", ""))
    leg = str(value.get("leg_id", ""))
    text = domain.render(
        event,
        language,
        request_id=request_id,
        link=f"{ctx.public_base_url}/v1/requests/{request_id}",
        department=str(value.get("department", "")),
    )
    if text is None:
        return
    for channel in ctx.channels:
        await _deliver(
            ctx,
            channel,
            request_id=request_id,
            event=event,
            leg=leg,
            language=language,
            phone=phone,
            text=text,
        )
    submitted_at = value.get("submitted_at")
    if isinstance(submitted_at, str):
        from datetime import datetime

        END_TO_END_SECONDS.labels("notify").observe(
            (utcnow() - datetime.fromisoformat(submitted_at)).total_seconds()
        )


async def _deliver(
    ctx: NotifyContext,
    channel: Channel,
    *,
    request_id: str,
    event: str,
    leg: str,
    language: Language,
    phone: str,
    text: str,
) -> None:
    nid = domain.notification_id(request_id, event, channel.name, leg)
    now = utcnow()
    stored = await ctx.repo.claim(
        notification_id=nid, request_id=request_id, event=event, channel=channel.name, at=now
    )
    if stored.get("status") != "sent":
        await channel.send(notification_id=nid, phone=phone, text=text)
        await ctx.repo.mark(nid, status="sent", at=now)
    record = NotificationRecord(
        notification_id=nid,
        request_id=request_id,
        event=event,
        channel=channel.name,
        status="sent",
        language=language,
        at=now,
    )
    await ctx.bus.emit(
        Topic.NOTIFICATIONS,
        record,
        key=request_id,
        name="notification.sent",
        event_id=effect_id("notification", nid),
    )
