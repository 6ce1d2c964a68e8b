"""Open311 GeoReport v2 under ``/open311/v2/``: services, service definitions, POST and GET
requests, tokens; JSON or XML by the path's extension, errors in the spec's format."""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Request, Response
from pymongo.errors import PyMongoError
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import domain, handlers, open311, open311_formats
from services.intake.handlers import IntakeContext
from services.intake.open311 import Open311Error, Open311InputError, bad
from services.intake.open311_formats import Format
from services.intake.ratelimit import retry_after

logger = logging.getLogger(__name__)

PREFIX = "/open311/v2"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _format(fmt: str) -> Format:
    if fmt == "json":
        return "json"
    if fmt == "xml":
        return "xml"
    raise bad(404, "unknown format: use .json or .xml")


def _answer(
    payload: object,
    fmt: Format,
    *,
    root: str,
    item: str | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = (
        open311_formats.render_xml(root, item, payload)
        if fmt == "xml"
        else open311_formats.render_json(payload)
    )
    return Response(
        body, status_code=status, media_type=open311_formats.media_type(fmt), headers=headers
    )


def _errors(
    problem: Open311InputError, fmt: str, headers: dict[str, str] | None = None
) -> Response:
    chosen: Format = "xml" if fmt == "xml" else "json"
    return Response(
        open311_formats.render_errors(problem.errors, chosen),
        status_code=problem.status,
        media_type=open311_formats.media_type(chosen),
        headers=headers,
    )


def build_router(ctx: IntakeContext) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["open311"])
    config = ctx.rules.open311

    # Refusals (Open311InputError) are answered in the spec's format by on_refusal.
    @router.get("/services.{fmt}", summary="Open311: service list (our categories)")
    async def services(fmt: str) -> Response:
        chosen = _format(fmt)
        return _answer(open311.service_list(config), chosen, root="services", item="service")

    @router.get("/services/{service_code}.{fmt}", summary="Open311: service definition")
    async def service_definition(service_code: str, fmt: str) -> Response:
        chosen = _format(fmt)
        definition = open311.service_definition(config, service_code)
        return _answer(definition, chosen, root="service_definition", item=None)

    @router.post("/requests.{fmt}", summary="Open311: submit a service request (form fields)")
    async def post_request(fmt: str, request: Request) -> Response:
        return await _post_request(request, _format(fmt))

    async def _post_request(request: Request, fmt: Format) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _FORM_TYPES:
            raise bad(400, "send the fields as application/x-www-form-urlencoded")
        form = await request.form()
        items: list[tuple[str, str]] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise bad(400, f"{name}: file uploads are not accepted (use media_url)")
            items.append((name, value))
        api_key = next((v for k, v in items if k == "api_key"), None)
        api_key = api_key or request.query_params.get("api_key")
        key_hash = ctx.api_keys.find(api_key)
        if key_hash is None:
            raise bad(403, "api_key is missing or not valid")
        help_request = open311.help_request_from_form(items, config)
        client = f"open311:{key_hash[:16]}"
        wait = await handlers.rate_limit_wait(
            ctx, client_key=client, phone=help_request.contact.phone
        )
        if wait > 0:
            raise Open311InputError(
                [Open311Error(429, "too many requests from this phone or client; retry later")],
                retry_after=retry_after(wait),
            )
        try:
            receipt = await handlers.submit(
                help_request,
                channel="open311",
                client=client,
                idempotency_key=request.headers.get("idempotency-key"),
                ctx=ctx,
            )
        except (KafkaError, TimeoutError):
            raise Open311InputError(
                [Open311Error(503, "the request could not be stored; nothing was accepted")],
                retry_after="5",
            ) from None
        try:
            await ctx.repo.save_open311_token(
                token_hash=domain.token_hash(receipt.tracking_token), request_id=receipt.request_id
            )
        except PyMongoError as exc:
            logger.warning(
                "could not store the Open311 token: %s",
                type(exc).__name__,
                extra={"request_id": receipt.request_id},
            )
        answer = [
            {
                "service_request_id": receipt.request_id,
                "token": receipt.tracking_token,
                "service_notice": (
                    "已受理，核实人员将回电 / Accepted; a verifier will call back. "
                    f"{ctx.settings.public_base_url}/v1/requests/{receipt.request_id}"
                ),
                "account_id": None,
            }
        ]
        return _answer(answer, fmt, root="service_requests", item="request")

    @router.get("/requests.{fmt}", summary="Open311: search service requests")
    async def get_requests(fmt: str, request: Request) -> Response:
        chosen = _format(fmt)
        query = open311.parse_query(dict(request.query_params), config, now=ctx.clock())
        if query.ids:
            docs = [doc for rid in query.ids if (doc := await ctx.repo.get(rid)) is not None]
        else:
            docs = await ctx.repo.search(
                categories=query.service_codes,
                statuses=query.statuses,
                start=query.start,
                end=query.end,
                limit=config.max_results,
            )
        views = [open311.request_view(doc, config) for doc in docs]
        return _answer(views, chosen, root="service_requests", item="request")

    @router.get("/requests/{service_request_id}.{fmt}", summary="Open311: one service request")
    async def get_request(service_request_id: str, fmt: str) -> Response:
        chosen = _format(fmt)
        doc = await ctx.repo.get(service_request_id)
        if doc is None:
            raise bad(404, f"service_request_id {service_request_id!r} not found")
        view = open311.request_view(doc, config)
        return _answer([view], chosen, root="service_requests", item="request")

    @router.get("/tokens/{token}.{fmt}", summary="Open311: service request id from a token")
    async def get_token(token: str, fmt: str) -> Response:
        chosen = _format(fmt)
        request_id = await ctx.repo.request_for_token(domain.token_hash(token))
        if request_id is None:
            raise bad(404, "token not found")
        answer = [{"service_request_id": request_id, "token": token}]
        return _answer(answer, chosen, root="service_requests", item="request")

    @router.api_route(
        "/{rest:path}", methods=["GET", "POST"], include_in_schema=False, name="open311_unknown"
    )
    async def unknown(rest: str) -> Response:
        fmt = "xml" if rest.endswith(".xml") else "json"
        return _errors(bad(404, "no such Open311 resource"), fmt)

    return router


def install(app: FastAPI) -> None:
    """Open311's refusals answered in the spec's error format, in the path's format (JSON
    unless ``.xml``), with Retry-After when the refusal names one."""

    @app.exception_handler(Open311InputError)
    async def on_refusal(request: Request, exc: Open311InputError) -> Response:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return _errors(exc, str(request.path_params.get("fmt", "json")), headers)


class Open311TooLarge:
    """Outside the shared body-size limit: its 413 on an Open311 path is re-said in the spec's
    error format (JSON or XML by the path's extension)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        fmt: Format = "xml" if path.endswith(".xml") else "json"
        replaced = False

        async def spec_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                replaced = True
                body = open311_formats.render_errors(
                    [Open311Error(413, "the body is too large")], fmt
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", open311_formats.media_type(fmt).encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            elif not replaced:
                await send(message)

        await self.app(scope, receive, spec_send)
