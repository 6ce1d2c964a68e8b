"""Verify's composition root: two lanes of submitted requests, the review queue over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from services.verify import api, call_tasks, calls, domain, handlers, pages
from services.verify.history import RecentHistory
from services.verify.repository import VerifyRepository
from services.verify.settings import VerifySettings
from shared.db import Client
from shared.envelope import utcnow
from shared.http import install_error_handlers
from shared.keys import KeyDigests
from shared.runtime import Runtime
from shared.schemas import RejectedRequest, ReviewRequest, VerifiedRequest
from shared.topics import Topic
from shared.web import Pages

logger = logging.getLogger(__name__)


def build_app(
    settings: VerifySettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
    clock: Callable[[], datetime] = utcnow,
) -> Any:
    """The verify app; tests may pass their own clock."""
    settings = settings or VerifySettings()
    config = domain.load_config(
        settings.config_dir,
        jurisdiction_file=settings.jurisdiction_file,
        rules_file=settings.rules_file,
        triage_file=settings.triage_file,
    )
    rt = Runtime.create(
        "verify", settings, broker=broker, client=client, create_topics=create_topics
    )
    rt.bus.declare(Topic.VERIFIED, schema=VerifiedRequest)
    rt.bus.declare(Topic.VERIFIED_PRIORITY, schema=VerifiedRequest)
    rt.bus.declare(Topic.REVIEW, schema=ReviewRequest)
    rt.bus.declare(Topic.REJECTED, schema=RejectedRequest)
    repo = VerifyRepository(rt.db)
    rt.startup.append(repo.ensure_indexes)
    window = max(config.rules.duplicate_window, config.rules.flood_window)
    ctx = handlers.VerifyContext(
        bus=rt.bus,
        repo=repo,
        config=config,
        history=RecentHistory(
            limit=config.rules.history_limit, max_entries=settings.history_max_entries
        ),
        clock=clock,
    )

    async def load_history() -> None:
        """What the duplicate and flood rules remember, back in memory before consuming."""
        loaded = await ctx.history.load_recent(repo.recent_history(ctx.clock() - window))
        logger.info("history loaded: %d entries of %d phones", loaded, len(ctx.history))

    rt.startup.append(load_history)
    plan = partial(handlers.plan_submitted, ctx=ctx)
    careful = partial(handlers.finish_submitted, ctx=ctx)
    # The priority lane in a consumer group of its own (verify-priority), so an urgent request
    # never waits behind a backlog of ordinary ones on the other lane.
    rt.subscribe_lanes(
        [Topic.SUBMITTED], [Topic.SUBMITTED_PRIORITY], plan, careful=careful, name="submitted"
    )

    keys = KeyDigests.of_keys(settings.reviewer_keys)
    rules = calls.CallRules(
        service_level=timedelta(seconds=settings.call_service_level_seconds),
        max_unreachable=settings.call_max_unreachable,
        after_unreachable=settings.call_after_unreachable,
        after_wrong_number=settings.call_after_wrong_number,
    )
    tasks = call_tasks.CallTasks(rt.db)

    async def queue_gauges() -> None:
        await call_tasks.gauge_loop(tasks, rules, interval=settings.queue_gauge_seconds)

    rt.background.append(queue_gauges)
    router = api.build_router(ctx, keys=keys, tasks=tasks, rules=rules)
    # The verifier console: the same calls as the API, behind a session opened by the key.
    web = Pages(service="verify", package_dir=pages.HERE, secret=settings.page_secret)
    console = pages.build_router(pages=web, ctx=ctx, keys=keys)
    app = rt.http_app(title="City help: verify", routers=[router, console])
    web.install(app)
    install_error_handlers(app)
    return app
