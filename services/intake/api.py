"""Intake's JSON API: citizens' requests (web and app) and partners' signed requests.

Entry points only translate HTTP to handler calls: validate, rate-limit, authenticate, submit.
"""

from __future__ import annotations

import logging
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from services.intake import domain, handlers, tracking
from services.intake.handlers import IntakeContext, Receipt
from services.intake.ratelimit import retry_after
from shared.http import problem
from shared.schemas import HelpRequest, PartnerHelpRequest

logger = logging.getLogger(__name__)


def queue_unavailable() -> JSONResponse:
    return problem(
        503,
        "queue_unavailable",
        "The request could not be stored; nothing was accepted. "
        "Retry with the same Idempotency-Key.",
        headers={"Retry-After": "5"},
    )


def too_many(wait: float) -> JSONResponse:
    return problem(
        429,
        "rate_limited",
        "Too many requests from this phone number or client; retry later.",
        headers={"Retry-After": retry_after(wait)},
        retry_after_seconds=int(retry_after(wait)),
    )


def receipt_body(receipt: Receipt, ctx: IntakeContext) -> dict[str, object]:
    return {
        "request_id": receipt.request_id,
        "tracking_token": receipt.tracking_token,
        "status": receipt.status,
        "status_url": f"{ctx.settings.public_base_url}/v1/requests/{receipt.request_id}",
        "replayed": receipt.replayed,
    }


def validation_problems(exc: ValidationError) -> JSONResponse:
    """A body that failed validation: 400 when it is not JSON, else 422 listing each problem."""
    problems = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "problem": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False)
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return problem(400, "malformed_json", "The body is not valid JSON.", problems=problems)
    return problem(
        422, "invalid_request", f"{len(problems)} problem(s) in the request.", problems=problems
    )


async def web_rate_limit_wait(request: Request, ctx: IntakeContext, *, phone: str) -> float:
    """Seconds a web submission must wait: its client (the address behind the trusted
    proxies) and its phone each have their own limit."""
    client = domain.client_address(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        ctx.trusted_proxies,
    )
    return await handlers.rate_limit_wait(ctx, client_key=f"web:{client}", phone=phone)


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["requests"])

    @router.post("/v1/requests", status_code=202, summary="Submit a help request")
    async def post_request(
        body: HelpRequest,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        x_client_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> JSONResponse:
        wait = await web_rate_limit_wait(request, ctx, phone=body.contact.phone)
        if wait > 0:
            return too_many(wait)
        try:
            receipt = await handlers.submit(
                body,
                channel="web",
                client=f"web:{x_client_id or 'anonymous'}",
                idempotency_key=idempotency_key,
                ctx=ctx,
            )
        except (KafkaError, TimeoutError):
            return queue_unavailable()
        return JSONResponse(receipt_body(receipt, ctx), status_code=202)

    @router.get("/v1/requests/{request_id}", summary="Status and timeline of a request")
    async def get_request(
        request_id: Annotated[str, Path(max_length=128)],
        token: Annotated[str | None, Query(max_length=128)] = None,
        x_tracking_token: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        doc = await ctx.repo.get(request_id)
        if doc is None:
            return problem(404, "not_found", "No request with this id.")
        presented = token or x_tracking_token
        if presented is None:
            return JSONResponse(jsonable_encoder(domain.public_view(doc, ctx.rules.jurisdiction)))
        if not domain.token_matches(ctx.settings.tracking_secret, request_id, presented):
            return problem(403, "wrong_token", "The tracking token does not match this request.")
        return JSONResponse(jsonable_encoder(domain.full_view(doc, ctx.rules.jurisdiction)))

    @router.get("/v1/tracking-codes/{code}", summary="The request a short tracking code stands for")
    async def get_tracking_code(code: Annotated[str, Path(max_length=40)]) -> JSONResponse:
        """The public (masked) view of the request, for a code read out over the phone
        (any case, with or without the dash)."""
        canonical = tracking.normalise(code)
        if canonical is None:
            return problem(
                400, "invalid_code", "A tracking code is 8 characters of " + tracking.ALPHABET
            )
        request_id = await ctx.repo.request_of_code(canonical)
        doc = await ctx.repo.get(request_id) if request_id else None
        if request_id is None or doc is None:
            return problem(404, "not_found", "No request has this tracking code.")
        view = jsonable_encoder(domain.public_view(doc, ctx.rules.jurisdiction))
        return JSONResponse({"tracking_code": tracking.display(canonical), **view})

    @router.post(
        "/v1/partner/requests",
        status_code=202,
        summary="Submit a partner agency's help request (signed)",
        tags=["partners"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": PartnerHelpRequest.model_json_schema()}},
            }
        },
    )
    async def post_partner_request(
        request: Request,
        x_partner_id: Annotated[str | None, Header(max_length=64)] = None,
        x_timestamp: Annotated[str | None, Header(max_length=32)] = None,
        x_nonce: Annotated[str | None, Header(max_length=128)] = None,
        x_signature: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        """Headers: X-Partner-Id, X-Timestamp (unix seconds), X-Nonce (used once) and
        X-Signature = hex HMAC-SHA256(secret, "{timestamp}\\n{nonce}\\n" + raw body)."""
        body = await request.body()
        check = domain.check_partner_signature(
            headers={
                "x-partner-id": x_partner_id,
                "x-timestamp": x_timestamp,
                "x-nonce": x_nonce,
                "x-signature": x_signature,
            },
            body=body,
            partners=ctx.partners,
            secrets=ctx.partner_secrets,
            now=ctx.clock().timestamp(),
            max_skew_seconds=ctx.rules.max_clock_skew_seconds,
        )
        if not check.ok:
            logger.warning(
                "partner request refused",
                extra={"reason": check.reason, "partner_id": (x_partner_id or "")[:64]},
            )
            return problem(401, str(check.reason), check.message)
        assert x_partner_id is not None
        assert x_nonce is not None
        try:
            first_use = await ctx.repo.claim_nonce(
                partner_id=x_partner_id, nonce=x_nonce, at=ctx.clock()
            )
        except PyMongoError:
            return problem(503, "store_unavailable", "Retry later.", headers={"Retry-After": "5"})
        if not first_use:
            logger.warning(
                "partner request refused", extra={"reason": "replayed", "partner_id": x_partner_id}
            )
            return problem(401, "replayed", "This X-Nonce was already used.")
        try:
            partner_request = PartnerHelpRequest.model_validate_json(body)
        except ValidationError as exc:
            return validation_problems(exc)
        if partner_request.partner_id != x_partner_id:
            return problem(
                403, "partner_mismatch", "partner_id in the body is not the signing partner."
            )
        wait = await handlers.rate_limit_wait(
            ctx, client_key=f"partner:{x_partner_id}", phone=partner_request.contact.phone
        )
        if wait > 0:
            return too_many(wait)
        try:
            receipt = await handlers.submit_partner(
                partner_request, channel="partner_http", ctx=ctx
            )
        except (KafkaError, TimeoutError):
            return queue_unavailable()
        return JSONResponse(receipt_body(receipt, ctx), status_code=202)

    return router
