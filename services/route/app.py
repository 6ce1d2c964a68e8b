"""Route's composition root."""

from __future__ import annotations

from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from services.route import domain, handlers
from services.route.repository import RouteRepository
from services.route.settings import RouteSettings
from shared.db import Client
from shared.runtime import Runtime
from shared.schemas import DispatchJob
from shared.topics import DISPATCH_TOPICS, Topic


def build_app(
    settings: RouteSettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
) -> Any:
    settings = settings or RouteSettings()
    rt = Runtime.create(
        "route", settings, broker=broker, client=client, create_topics=create_topics
    )
    for topic in DISPATCH_TOPICS:
        rt.bus.declare(topic, schema=DispatchJob)
    repo = RouteRepository(rt.db)
    rt.startup.append(repo.ensure_indexes)
    ctx = handlers.RouteContext(
        bus=rt.bus,
        repo=repo,
        rules=domain.load_rules(settings.config_dir / settings.rules_file),
        levels=domain.load_service_levels(settings.config_dir / settings.service_levels_file),
    )
    rt.subscribe([Topic.VERIFIED], partial(handlers.handle_verified, ctx=ctx), name="verified")
    return rt.http_app(title="City help: route")
