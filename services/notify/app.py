"""Notify's composition root."""

from __future__ import annotations

from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from services.notify import handlers
from services.notify.channels import build_channels
from services.notify.repository import NotifyRepository
from services.notify.settings import NotifySettings
from shared.db import Client
from shared.runtime import Runtime
from shared.schemas import NotificationRecord
from shared.topics import DISPATCH_TOPICS, Topic


def build_app(
    settings: NotifySettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
) -> Any:
    settings = settings or NotifySettings()
    rt = Runtime.create(
        "notify", settings, broker=broker, client=client, create_topics=create_topics
    )
    rt.bus.declare(Topic.NOTIFICATIONS, schema=NotificationRecord)
    repo = NotifyRepository(rt.db)
    rt.startup.append(repo.ensure_indexes)
    ctx = handlers.NotifyContext(
        bus=rt.bus,
        repo=repo,
        channels=build_channels(settings.channels),
        public_base_url=settings.public_base_url,
    )
    rt.subscribe(
        [Topic.SUBMITTED, Topic.VERIFIED, *DISPATCH_TOPICS],
        partial(handlers.handle_lifecycle, ctx=ctx),
        name="lifecycle",
    )
    return rt.http_app(title="City help: notify")
