"""Intake's composition root: ``build_app(settings, **overrides)`` returns the ASGI app."""

from __future__ import annotations

from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker

from services.intake import domain, handlers
from services.intake.repository import IntakeRepository
from services.intake.settings import IntakeSettings
from shared.db import Client
from shared.http import BodySizeLimit, install_error_handlers, problem
from shared.runtime import Runtime
from shared.schemas import HelpRequest, SubmittedRequest
from shared.topics import Topic


def build_app(
    settings: IntakeSettings | None = None,
    *,
    broker: KafkaBroker | None = None,
    client: Client | None = None,
    create_topics: bool = True,
) -> Any:
    settings = settings or IntakeSettings()
    rt = Runtime.create(
        "intake", settings, broker=broker, client=client, create_topics=create_topics
    )
    rt.bus.declare(Topic.SUBMITTED, schema=SubmittedRequest)
    repo = IntakeRepository(rt.db)
    rt.startup.append(repo.ensure_indexes)

    router = APIRouter(tags=["requests"])

    @router.post("/v1/requests", status_code=202, summary="Submit a help request")
    async def post_request(
        body: HelpRequest,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        x_client_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> JSONResponse:
        try:
            receipt = await handlers.submit(
                body,
                channel="web",
                client=f"web:{x_client_id or 'anonymous'}",
                idempotency_key=idempotency_key,
                bus=rt.bus,
                repo=repo,
                settings=settings,
            )
        except (KafkaError, TimeoutError):
            return problem(
                503,
                "queue_unavailable",
                "The request could not be stored; nothing was accepted. "
                "Retry with the same Idempotency-Key.",
                headers={"Retry-After": "5"},
            )
        return JSONResponse(
            {
                "request_id": receipt.request_id,
                "tracking_token": receipt.tracking_token,
                "status": receipt.status,
                "status_url": f"{settings.public_base_url}/v1/requests/{receipt.request_id}",
            },
            status_code=202,
        )

    @router.get("/v1/requests/{request_id}", summary="Status and timeline of a request")
    async def get_request(
        request_id: str,
        token: Annotated[str | None, Query(max_length=128)] = None,
        x_tracking_token: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        doc = await repo.get(request_id)
        if doc is None:
            return problem(404, "not_found", "No request with this id.")
        presented = token or x_tracking_token
        if presented is None:
            return JSONResponse(jsonable_encoder(domain.public_view(doc)))
        if not domain.token_matches(settings.tracking_secret, request_id, presented):
            return problem(403, "wrong_token", "The tracking token does not match this request.")
        return JSONResponse(jsonable_encoder(domain.full_view(doc)))

    app = rt.http_app(title="City help: intake", routers=[router])
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
