"""Intake's JSON API: citizens' requests (web and app) and partners' signed requests.

Entry points only translate HTTP to handler calls: validate, rate-limit, authenticate, submit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
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


def validation_problems(
    exc: ValidationError | None, problems: list[dict[str, str]] | None = None
) -> JSONResponse:
    """A body that failed validation: 400 when it is not JSON, else 422 listing each problem
    (the body's, and ``problems`` found elsewhere, in the headers say)."""
    problems = list(problems or ())
    problems += [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "body",
            "problem": err["msg"],
            "type": err["type"],
        }
        for err in (exc.errors(include_url=False) if exc is not None else ())
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return problem(400, "malformed_json", "The body is not valid JSON.", problems=problems)
    return problem(
        422, "invalid_request", f"{len(problems)} problem(s) in the request.", problems=problems
    )


# The JSON API's optional headers and their longest values. They are read by hand rather than
# declared as FastAPI parameters (which cost the accept path a tenth of its CPU), and
# documented in the OpenAPI document all the same.
REQUEST_HEADERS = {"Idempotency-Key": 200, "X-Client-Id": 64}
# The JSON API's accept route (answered from the middleware layer: services/intake/direct.py).
ACCEPT_PATH = "/v1/requests"


def header_problems(headers: Mapping[str, str]) -> list[dict[str, str]]:
    """Headers longer than allowed, as validation problems (``header.<name>``)."""
    return [
        {
            "field": f"header.{name.lower()}",
            "problem": f"String should have at most {limit} characters",
            "type": "string_too_long",
        }
        for name, limit in REQUEST_HEADERS.items()
        if len(headers.get(name.lower(), "")) > limit
    ]


def is_json(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is read as JSON (no Content-Type: it is)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def json_api(model: type[BaseModel], headers: Mapping[str, int]) -> dict[str, Any]:
    """The OpenAPI of a route that reads its JSON body and ``headers`` (name: longest value)
    itself: the body's schema, the headers, and the error answers."""
    parameters = [
        {
            "name": name.lower(),
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": limit},
        }
        for name, limit in headers.items()
    ]
    body = {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }
    return {"parameters": parameters, "requestBody": body} if parameters else {"requestBody": body}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    415: {"description": "The body is not sent as application/json"},
    422: {"description": "Each problem of the request: its field, what is wrong, its type"},
    429: {"description": "Too many requests from this phone or client (Retry-After)"},
    503: {"description": "Not stored, nothing accepted: retry with the same Idempotency-Key"},
}


async def web_rate_limit_wait(request: Request, ctx: IntakeContext, *, phone: str) -> float:
    """Seconds a web submission must wait: its client (the address behind the trusted
    proxies) and its phone each have their own limit."""
    return await client_rate_limit_wait(
        ctx,
        peer=request.client.host if request.client else None,
        forwarded_for=request.headers.get("x-forwarded-for"),
        phone=phone,
    )


async def client_rate_limit_wait(
    ctx: IntakeContext, *, peer: str | None, forwarded_for: str | None, phone: str
) -> float:
    """:func:`web_rate_limit_wait` from the peer's address and its X-Forwarded-For."""
    client = domain.client_address(peer, forwarded_for, ctx.trusted_proxies)
    return await handlers.rate_limit_wait(ctx, client_key=f"web:{client}", phone=phone)


async def accept_web(
    ctx: IntakeContext,
    *,
    headers: Mapping[str, str],
    read_body: Callable[[], Awaitable[bytes]],
    peer: str | None,
) -> JSONResponse:
    """The answer to ``POST /v1/requests`` (``headers``: looked up by lower-case name; the body
    is read only once the Content-Type is known to be JSON). 202 once the request is durably
    in Kafka; a retry with the same Idempotency-Key gets the first answer again."""
    if not is_json(headers.get("content-type")):
        return problem(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        body = HelpRequest.model_validate_json(await read_body())
    except ValidationError as exc:
        return validation_problems(exc, header_problems(headers))
    if too_long := header_problems(headers):
        return validation_problems(None, too_long)
    idempotency_key = headers.get("idempotency-key")
    x_client_id = headers.get("x-client-id")
    wait = await client_rate_limit_wait(
        ctx, peer=peer, forwarded_for=headers.get("x-forwarded-for"), phone=body.contact.phone
    )
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


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(tags=["requests"])

    @router.post(
        ACCEPT_PATH,
        status_code=202,
        summary="Submit a help request",
        openapi_extra=json_api(HelpRequest, REQUEST_HEADERS),
        responses=ERRORS,
    )
    async def post_request(request: Request) -> JSONResponse:
        """Answers 202 once the request is durably in Kafka; a retry with the same
        Idempotency-Key gets the first answer again (``"replayed": true``)."""
        # The app itself answers this route from its middleware (services/intake/direct.py);
        # it is declared here for the OpenAPI document and for apps without that shortcut.
        return await accept_web(
            ctx,
            headers=request.headers,
            read_body=request.body,
            peer=request.client.host if request.client else None,
        )

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
        openapi_extra=json_api(PartnerHelpRequest, {}),
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
