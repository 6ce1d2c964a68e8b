"""Intake's handlers: turn a validated submission into a durable event and a receipt, from
every channel (JSON API, Open311, partner HTTP, partner topic)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pymongo.errors import PyMongoError

from services.intake import domain, tracking
from services.intake.ratelimit import RateLimiter, SharedLimit
from services.intake.receipts import ReplayCache
from services.intake.recorder import SubmissionWriter
from services.intake.repository import IntakeRepository, submission_document
from services.intake.settings import IntakeSettings
from shared.envelope import CE_TYPE, event_type, utcnow
from shared.faults import crash_point
from shared.kafka import EventBus, effect_id
from shared.keys import KeyDigests
from shared.metrics import INTAKE_REPLAYS, REQUESTS
from shared.requests_store import packed_record
from shared.schemas import Channel, HelpRequest, PartnerHelpRequest, SubmittedRequest
from shared.stage import PermanentError, Record

logger = logging.getLogger(__name__)

# Call-back survey answers share help.partner.inbound; notify handles them, intake skips them.
SURVEY_ANSWER_TYPE = event_type("survey.answer")


@dataclass(frozen=True, slots=True)
class Receipt:
    request_id: str
    tracking_token: str
    status: str
    replayed: bool = False


@dataclass(frozen=True)
class IntakeContext:
    """What intake's handlers and routes need, built once by ``build_app``; the clock too, so a
    test can fix the time."""

    bus: EventBus
    repo: IntakeRepository
    settings: IntakeSettings
    rules: domain.IntakeRules
    partners: dict[str, domain.Partner]
    # Secrets and api keys: partner secrets in clear (needed for HMAC), api keys only hashed.
    partner_secrets: dict[str, str] = field(default_factory=dict)
    api_keys: KeyDigests = field(default_factory=lambda: KeyDigests({}))
    phone_limiter: RateLimiter | None = None
    client_limiter: SharedLimit | None = None
    # Proxies whose X-Forwarded-For names the client (INTAKE_TRUSTED_PROXIES).
    trusted_proxies: domain.Networks = ()
    # Recent keyed receipts (retries answered without the database) and the batch writer of
    # the submission records (off the request path).
    receipts: ReplayCache = field(default_factory=ReplayCache)
    recorder: SubmissionWriter | None = None
    clock: Callable[[], datetime] = utcnow


async def rate_limit_wait(ctx: IntakeContext, *, client_key: str, phone: str) -> float:
    """0.0 when this submission may go ahead, else the seconds to wait. Keys are hashes: the
    phone number and the address themselves are never kept or logged."""
    if ctx.client_limiter is not None:
        wait = await ctx.client_limiter.wait(domain.digest(f"client:{client_key}")[:32])
        if wait > 0:
            return wait
    if ctx.phone_limiter is not None:
        return ctx.phone_limiter.take(domain.phone_key(phone, ctx.rules.jurisdiction))
    return 0.0


async def known_status(ctx: IntakeContext, request_id: str) -> str | None:
    """The status of a keyed request already accepted, or None: from the cache of recent
    receipts, else one read of its record (a retry from before this process, or from another
    intake process). The database away or slow counts as unknown: the request is published
    again with the same id, which every later stage sees as the same request."""
    status = ctx.receipts.get(request_id)
    if status is not None:
        INTAKE_REPLAYS.labels("cache").inc()
        return status
    try:
        async with asyncio.timeout(ctx.settings.replay_lookup_timeout_seconds):
            existing = await ctx.repo.get(request_id)
    except (PyMongoError, TimeoutError):
        return None
    if existing is None:
        return None
    status = str(existing.get("status", "submitted"))
    ctx.receipts.put(request_id, status)
    INTAKE_REPLAYS.labels("database").inc()
    return status


async def submit(
    request: HelpRequest,
    *,
    channel: Channel,
    client: str,
    idempotency_key: str | None,
    ctx: IntakeContext,
    partner_id: str | None = None,
    external_id: str | None = None,
) -> Receipt:
    """Accept a request: publish it (acks=all) before answering; a retry returns the original.

    Urgent-looking requests go to the priority topic (``domain.lane_for``). The request's
    record is queued for the batch writer, not awaited: the 202 waits for Kafka only, and
    verify creates the record if intake's write is missing.
    """
    request_id = domain.request_id_for(client=client, idempotency_key=idempotency_key)
    token = domain.tracking_token(ctx.settings.tracking_secret, request_id)
    if idempotency_key:
        status = await known_status(ctx, request_id)
        if status is not None:
            return Receipt(request_id, token, status, replayed=True)
    submitted = SubmittedRequest(
        request_id=request_id,
        submitted_at=ctx.clock(),
        channel=channel,
        client_id=client,
        partner_id=partner_id,
        external_id=external_id,
        tracking_token_hash=domain.token_hash(token),
        request=request,
    )
    topic = domain.lane_for(request, ctx.rules)
    event_id = effect_id("submitted", request_id)
    await ctx.bus.emit_direct(
        topic, submitted, key=request_id, name="request.submitted", event_id=event_id
    )
    crash_point("intake.after_publish")
    REQUESTS.labels("received", request.category, "", "unverified").inc()
    if idempotency_key:
        ctx.receipts.put(request_id)
    if ctx.recorder is not None:
        ctx.recorder.add(packed_record(submission_document(submitted, event_id=event_id)))
    # DEBUG, not INFO: a line per request costs the accept path more than its publish, and
    # cityhelp_http_requests_total and cityhelp_requests_total count the accepted ones.
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "request accepted",
            extra={
                "request_id": request_id,
                "channel": channel,
                "category": request.category,
                "lane": topic.value,
            },
        )
    return Receipt(request_id, token, "submitted")


async def tracking_code(ctx: IntakeContext, request_id: str) -> str:
    """The request's short tracking code, drawn and stored the first time it is asked for.

    Two codes are stored by their ``_id`` (code → request, then request → code), so neither
    lookup needs a secondary index; a code another request holds is drawn again, and of two
    processes racing for one request the first code recorded wins (the loser's code still
    resolves to the same request)."""
    existing = await ctx.repo.code_of(request_id)
    if existing is not None:
        return existing
    for _ in range(CODE_DRAWS):
        code = tracking.new_code()
        if await ctx.repo.claim_code(code, request_id, at=ctx.clock()):
            return await ctx.repo.assign_code(request_id, code, at=ctx.clock())
    raise RuntimeError("no free tracking code after several draws")


CODE_DRAWS = 8


async def submit_partner(
    request: PartnerHelpRequest, *, channel: Channel, ctx: IntakeContext
) -> Receipt:
    """A partner's request: its partner id and external id make every delivery one request."""
    body = HelpRequest.model_validate(request.model_dump(exclude={"partner_id", "external_id"}))
    return await submit(
        body,
        channel=channel,
        client=f"partner:{request.partner_id}",
        idempotency_key=request.external_id,
        ctx=ctx,
        partner_id=request.partner_id,
        external_id=request.external_id,
    )


async def handle_partner_record(record: Record, *, ctx: IntakeContext) -> None:
    """One record on help.partner.inbound: a partner's help request, published like an HTTP one.

    Survey answers on the same topic are notify's: skipped here, without a dead letter.
    Unparseable records and unknown partners raise :class:`PermanentError` (dead letter).
    """
    if record.headers.get(CE_TYPE) == SURVEY_ANSWER_TYPE:
        return
    request = record.parse(PartnerHelpRequest)
    partner = ctx.partners.get(request.partner_id)
    if partner is None or not partner.enabled:
        raise PermanentError("unknown_partner", f"partner_id {request.partner_id!r}"[:200])
    receipt = await submit_partner(request, channel="partner_topic", ctx=ctx)
    if receipt.replayed:
        logger.info(
            "partner request already accepted",
            extra={"request_id": receipt.request_id, "partner_id": request.partner_id},
        )
