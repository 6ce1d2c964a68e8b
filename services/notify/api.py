"""Notify's HTTP API: the citizen's answer to the call-back survey, keyed by the request's
tracking token. Entry points only translate HTTP to handler calls."""

from __future__ import annotations

from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StringConstraints

from services.notify import domain, handlers, surveys
from shared.envelope import utcnow
from shared.http import problem
from shared.schemas import SurveyAnswer


class SurveyBody(BaseModel):
    """The citizen's answer to the call-back: solved or not, and optionally why."""

    model_config = ConfigDict(extra="forbid")

    satisfied: bool
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


def build_router(ctx: handlers.NotifyContext) -> APIRouter:
    """The survey's route."""
    router = APIRouter(tags=["survey"])

    @router.post("/v1/requests/{request_id}/survey", summary="Answer the call-back survey")
    async def post_survey(
        request_id: str,
        body: SurveyBody,
        x_tracking_token: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        request = await ctx.repo.get_request(request_id)
        if request is None:
            return problem(404, "not_found", "No request with this id.")
        if not x_tracking_token:
            return problem(
                401, "token_required", "Send the tracking token in the X-Tracking-Token header."
            )
        if not domain.token_matches(x_tracking_token, request.get("tracking_token_hash")):
            return problem(403, "wrong_token", "The tracking token does not match this request.")
        answer = SurveyAnswer(
            request_id=request_id,
            satisfied=body.satisfied,
            comment=body.comment,
            answered_at=utcnow(),
        )
        try:
            status = await surveys.answer_survey(ctx, answer, source="http")
        except surveys.SurveyRefusedError as exc:
            return problem(exc.http_status, exc.code, exc.message)
        except (KafkaError, TimeoutError):
            return problem(
                503, "queue_unavailable", "Try again shortly.", headers={"Retry-After": "5"}
            )
        return JSONResponse({"request_id": request_id, "status": status})

    return router
