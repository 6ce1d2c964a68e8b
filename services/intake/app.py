"""Intake's composition root: ``build_app(settings, **overrides)`` returns the ASGI app."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker

from services.intake import api, direct, domain, handlers, open311_api, pages
from services.intake.handlers import IntakeContext
from services.intake.ratelimit import RateLimiter, SharedLimit
from services.intake.receipts import ReplayCache
from services.intake.recorder import SubmissionWriter
from services.intake.repository import IntakeRepository
from services.intake.settings import IntakeSettings
from shared import logs
from shared.db import Client
from shared.envelope import utcnow
from shared.http import BodySizeLimit, install_error_handlers
from shared.keys import KeyDigests
from shared.quota import WindowQuota, window_length
from shared.runtime import Runtime
from shared.schemas import SubmittedRequest
from shared.topics import Topic
from shared.web import Pages

logger = logging.getLogger(__name__)

NONCE_SWEEP_SECONDS = 600.0
# The per-client rate limit's slots (shared/quota.py), one document per client, window and slot.
CLIENT_LIMITS = "intake_client_limits"


def build_context(
    settings: IntakeSettings,
    rt: Runtime,
    repo: IntakeRepository | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> IntakeContext:
    """Rules, partners and secrets, read once; api keys are kept only as SHA-256."""
    rules = domain.load_rules(
        settings.config_dir / settings.rules_file,
        jurisdiction_path=settings.config_dir / settings.jurisdiction_file,
        triage_path=settings.config_dir / settings.triage_file,
    )
    partners = domain.load_partners(settings.config_dir / settings.partners_file)
    limits = rules.rate_limits
    repo = repo or IntakeRepository(rt.db)
    return IntakeContext(
        clock=clock,
        bus=rt.bus,
        repo=repo,
        settings=settings,
        rules=rules,
        partners=partners,
        partner_secrets={k: v.get_secret_value() for k, v in settings.partner_secrets.items()},
        api_keys=KeyDigests.named_by_digest(
            k.get_secret_value() for k in settings.open311_api_keys
        ),
        phone_limiter=RateLimiter(
            capacity=limits.phone_capacity, per_minute=limits.phone_per_minute
        ),
        client_limiter=SharedLimit(
            WindowQuota(
                rt.db[CLIENT_LIMITS],
                limit=int(limits.client_capacity),
                window_seconds=window_length(
                    limits.client_capacity, limits.client_per_minute
                ).total_seconds(),
                chunk=limits.client_chunk,
                grace=min(limits.client_grace, int(limits.client_capacity)),
            )
        ),
        trusted_proxies=domain.trusted_networks(settings.trusted_proxies),
        receipts=ReplayCache(
            max_entries=settings.replay_cache_size, ttl_seconds=settings.replay_cache_ttl_seconds
        ),
        recorder=SubmissionWriter(
            repo.insert_submissions,
            batch_max=settings.record_batch_max,
            flush_seconds=settings.record_flush_seconds,
            buffer_max=settings.record_buffer_max,
            timeout_seconds=settings.record_timeout_seconds,
            retry_initial_seconds=settings.retry_initial_seconds,
            retry_max_seconds=settings.retry_max_seconds,
        ),
    )


def build_app(
    settings: IntakeSettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
    repo: IntakeRepository | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Any:
    """The intake app; tests may pass their own repository and clock."""
    settings = settings or IntakeSettings()
    rt = Runtime.create(
        "intake", settings, broker=broker, client=client, create_topics=create_topics
    )
    rt.bus.declare(Topic.SUBMITTED, schema=SubmittedRequest)
    rt.bus.declare(Topic.SUBMITTED_PRIORITY, schema=SubmittedRequest)
    ctx = build_context(settings, rt, repo, clock)
    rt.startup.append(ctx.repo.ensure_indexes)
    # Partner records: at least once through the shared stage (bad records → help.dlq.intake).
    rt.subscribe(
        [Topic.PARTNER_INBOUND],
        partial(handlers.handle_partner_record, ctx=ctx),
        name="partner_inbound",
    )

    async def sweep_nonces() -> None:
        """Nonces older than twice the allowed clock skew can never be replayed: drop them."""
        keep = timedelta(seconds=2 * ctx.rules.max_clock_skew_seconds)
        while True:
            await ctx.repo.forget_nonces(before=ctx.clock() - keep)
            if ctx.client_limiter is not None:
                await ctx.client_limiter.quota.sweep(ctx.clock())
            await asyncio.sleep(NONCE_SWEEP_SECONDS)

    rt.background.append(sweep_nonces)
    if ctx.recorder is not None:
        rt.background.append(ctx.recorder.run)  # flushes what is left when the app stops
    if not ctx.api_keys:
        logger.warning("no Open311 api keys configured: Open311 POST requests are refused")

    web = Pages(service="intake", package_dir=Path(__file__).parent, secret=settings.page_secret)
    json_api = api.build_router(ctx)
    app = rt.http_app(
        title="City help: intake",
        routers=[
            json_api,
            open311_api.build_router(ctx),
            pages.build_router(ctx, web),
        ],
    )
    web.install(app)
    app.state.intake = ctx  # tests reach the replay cache and the batch writer through it
    install_error_handlers(app)
    open311_api.install(app)
    direct.install(app, ctx, json_api)  # innermost: POST /v1/requests past FastAPI's routing
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(open311_api.Open311TooLarge)  # outermost: sees the limit's 413
    return app


def create_app() -> Any:
    """The app of one HTTP worker process when ``INTAKE_HTTP_WORKERS`` > 1 (each worker calls
    this factory: ``services.intake.app:create_app``)."""
    _die_with_supervisor()
    settings = IntakeSettings()
    logs.configure("intake", level=settings.log_level, fmt=settings.log_format)
    return build_app(settings)


def _die_with_supervisor() -> None:
    """A worker whose supervising process is killed (SIGKILL, a crash) ends as well, as one
    process would, instead of living on with the port (Linux: PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
