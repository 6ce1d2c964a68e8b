"""Route's composition root."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from services.route import api, dispatch, domain, handlers, pages
from services.route.handlers import timers
from services.route.published import PublishedEvents
from services.route.repository import RouteRepository
from services.route.settings import RouteSettings
from services.route.teams import load_directory
from shared.db import Client
from shared.envelope import utcnow
from shared.keys import KeyDigests
from shared.runtime import Runtime
from shared.schemas import DispatchJob, LifecycleEvent, StatusEvent
from shared.topics import DISPATCH_TOPICS, Topic
from shared.web import Pages


def build_app(
    settings: RouteSettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
    clock: Callable[[], datetime] = utcnow,
) -> Any:
    """The route app; tests may pass their own clock."""
    settings = settings or RouteSettings()
    rt = Runtime.create(
        "route", settings, broker=broker, client=client, create_topics=create_topics
    )
    for topic in DISPATCH_TOPICS:
        rt.bus.declare(topic, schema=DispatchJob)
    rt.bus.declare(Topic.LIFECYCLE, schema=LifecycleEvent)
    # The department boards publish their teams' reports as a departmental system would.
    rt.bus.declare(Topic.STATUS, schema=StatusEvent)
    repo = RouteRepository(rt.db)
    ctx = handlers.RouteContext(
        bus=rt.bus,
        repo=repo,
        rules=domain.load_rules(settings.config_dir / settings.rules_file),
        levels=domain.load_service_levels(settings.config_dir / settings.service_levels_file),
        directory=load_directory(settings.config_dir / settings.teams_file),
        published=PublishedEvents(settings),
        clock=clock,
    )

    async def sync_team_directory() -> None:
        await repo.sync_teams(ctx.directory)

    async def deadline_timers() -> None:
        await timers.sla_loop(
            ctx,
            interval=settings.sla_scan_seconds,
            lease=timedelta(seconds=settings.sla_claim_lease_seconds),
            owner=settings.instance_id or f"{socket.gethostname()}:{os.getpid()}",
        )

    rt.startup.append(sync_team_directory)
    rt.background.append(deadline_timers)
    # One consumer group per input: verified requests (two lanes), department reports and
    # the survey's reopen/close events are independent streams, each at least once.
    load = dispatch.TeamLoad(repo.team_load)
    rules = dispatch.DispatchRules(rules=ctx.rules, levels=ctx.levels, directory=ctx.directory)
    plan = partial(dispatch.plan_verified, rules=rules, load=load, clock=ctx.clock)
    careful = partial(handlers.handle_verified, ctx=ctx)
    # Urgent verified requests (P1, P2, green channel) have a lane and a consumer group of
    # their own, so a backlog of ordinary ones never delays their dispatch.
    lanes = (
        (Topic.VERIFIED, "verified", None),
        (Topic.VERIFIED_PRIORITY, "verified-priority", "route-priority"),
    )
    for topic, name, group in lanes:
        rt.subscribe_batch([topic], plan, careful=careful, name=name, group=group)
    # The department reports and the survey's events, one record at a time (group route-<name>).
    inputs = (
        (Topic.STATUS, "status", handlers.handle_status),
        (Topic.LIFECYCLE, "lifecycle", handlers.handle_lifecycle),
    )
    for topic, name, handler in inputs:
        rt.subscribe([topic], partial(handler, ctx=ctx), name=name, group=f"route-{name}")
    # The command centre (X-Command-Key) and the department boards (X-Board-Key).
    command_keys, board_keys = KeyDigests(settings.command_keys), KeyDigests(settings.board_keys)
    router = api.build_router(ctx, command_keys, board_keys)
    # The boards and the command centre's page: the same calls, behind sessions.
    web = Pages(service="route", package_dir=pages.HERE, secret=settings.page_secret)
    staff = pages.build_router(pages=web, ctx=ctx, command_keys=command_keys, board_keys=board_keys)
    app = rt.http_app(title="City help: route", routers=[router, staff])
    web.install(app)
    return app
