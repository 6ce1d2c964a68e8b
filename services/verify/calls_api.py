"""Verifiers' HTTP routes for the call-back task of a review item (``X-Verifier-Key``):
``GET /v1/review/{id}/calls`` (the task and its attempts) and ``POST /v1/review/{id}/calls``
(record one attempt: reached, unreachable or wrong number)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.verify import call_tasks
from services.verify.calls import CallOutcome, CallRules
from services.verify.domain import Config
from services.verify.repository import VerifyRepository
from shared.envelope import utcnow
from shared.http import problem
from shared.kafka import EventBus
from shared.keys import KeyDigests


class AttemptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome
    note: Annotated[str, Field(max_length=500)] | None = None


def build_router(
    *,
    keys: KeyDigests,
    tasks: call_tasks.CallTasks,
    repo: VerifyRepository,
    bus: EventBus,
    config: Config,
    rules: CallRules,
) -> APIRouter:
    router = APIRouter(tags=["review"])
    unauthorised = partial(
        problem,
        401,
        "unauthorised",
        "A verifier key is required (X-Verifier-Key).",
        headers={"WWW-Authenticate": "X-Verifier-Key"},
    )

    @router.get("/v1/review/{request_id}/calls", summary="The call-back task of a review item")
    async def get_calls(
        request_id: str,
        x_verifier_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        if keys.find(x_verifier_key) is None:
            return unauthorised()
        review = await repo.get_review(request_id)
        if review is None:
            return problem(404, "not_found", "No review with this id.")
        task = await tasks.get(request_id)
        return JSONResponse(jsonable_encoder(call_tasks.task_view(task, review, rules)))

    @router.post("/v1/review/{request_id}/calls", summary="Record a call-back attempt")
    async def post_call(
        request_id: str,
        body: AttemptBody,
        x_verifier_key: Annotated[str | None, Header(max_length=200)] = None,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        verifier = keys.find(x_verifier_key)
        if verifier is None:
            return unauthorised()
        result = await call_tasks.record_attempt(
            request_id,
            verifier=verifier,
            outcome=body.outcome,
            note=body.note,
            key=idempotency_key,
            tasks=tasks,
            repo=repo,
            bus=bus,
            config=config,
            rules=rules,
            now=utcnow(),
        )
        if not result.ok:
            status = 404 if result.error == "not_found" else 409
            return problem(status, result.error, result.message)
        task = result.task or {}
        review = await repo.get_review(request_id) or {
            "_id": request_id,
            "flagged_at": task.get("flagged_at", utcnow()),
        }
        view = call_tasks.task_view(task, review, rules)
        return JSONResponse(jsonable_encoder(view), status_code=201)

    return router
