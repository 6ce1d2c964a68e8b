"""Verify's HTTP API: the review queue verifiers work (list, claim, decide) and the call-back
task of a review item (``GET``/``POST /v1/review/{id}/calls``: its attempts; reached,
unreachable or wrong number), keyed by ``X-Verifier-Key``. Entry points only translate HTTP to
repository and handler calls."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.verify import call_tasks, domain, handlers, review
from services.verify.calls import CallOutcome, CallRules
from shared.http import key_holder, problem
from shared.keys import KeyDigests
from shared.schemas import Category, Priority


class AttemptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome
    note: Annotated[str, Field(max_length=500)] | None = None


class CorrectionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, Field(min_length=3, max_length=40)] | None = None
    district: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    category: Category | None = None
    priority: Priority | None = None


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["verify", "reject", "duplicate"]
    corrections: CorrectionsBody = CorrectionsBody()
    reason: Annotated[str, Field(max_length=500)] | None = None
    duplicate_of: Annotated[str, Field(max_length=128)] | None = None


def build_router(
    ctx: handlers.VerifyContext,
    *,
    keys: KeyDigests,
    tasks: call_tasks.CallTasks,
    rules: CallRules,
) -> APIRouter:
    """The review queue's routes, and the call-back task of each review item."""
    repo, config = ctx.repo, ctx.config
    router = APIRouter(tags=["review"])
    # The verifier whose key the request presents; a 401 without one.
    signed_in = Depends(key_holder(keys.find, "X-Verifier-Key", "A verifier key"))

    @router.get(
        "/v1/review",
        summary="Requests waiting for a verifier, most urgent first",
        dependencies=[signed_in],
    )
    async def list_reviews(
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> JSONResponse:
        reviews = await repo.open_reviews(limit or config.rules.review_list_limit)
        items = [review_item(doc) for doc in reviews]
        return JSONResponse(jsonable_encoder({"items": items, "count": len(items)}))

    @router.post("/v1/review/{request_id}/claim", summary="Claim a review to work on it")
    async def claim(request_id: str, verifier: str = signed_in) -> JSONResponse:
        result = await repo.claim(
            request_id, verifier=verifier, now=ctx.clock(), ttl=config.rules.claim_ttl
        )
        if result.outcome == "missing":
            return problem(404, "not_found", "No review with this id.")
        if result.outcome == "closed":
            return problem(409, "already_decided", "This review was already decided.")
        if result.outcome == "taken":
            return problem(
                409,
                "claimed_by_other",
                "Another verifier is working on this request.",
                claimed_by=result.verifier,
                expires_at=result.expires_at.isoformat() if result.expires_at else None,
            )
        return JSONResponse(
            jsonable_encoder(
                {
                    "request_id": request_id,
                    "claimed_by": result.verifier,
                    "expires_at": result.expires_at,
                }
            )
        )

    @router.post("/v1/review/{request_id}/decision", summary="Verify, reject or merge a request")
    async def decide(
        request_id: str, body: DecisionBody, verifier: str = signed_in
    ) -> JSONResponse:
        choice = review.ReviewDecision(
            body.decision,
            domain.Corrections(**body.corrections.model_dump()),
            body.reason,
            body.duplicate_of,
        )
        outcome = await review.decide_review(request_id, choice, verifier=verifier, ctx=ctx)
        if not outcome.ok:
            status = {
                "not_found": 404,
                "invalid_correction": 422,
                "invalid_duplicate": 422,
                "reason_required": 422,
            }.get(outcome.error, 409)
            return problem(status, outcome.error, outcome.message)
        return JSONResponse(
            {
                "request_id": request_id,
                "status": outcome.status,
                "decided_by": f"verifier:{verifier}",
                "event_id": outcome.event_id,
            }
        )

    @router.get(
        "/v1/review/{request_id}/calls",
        summary="The call-back task of a review item",
        dependencies=[signed_in],
    )
    async def get_calls(request_id: str) -> JSONResponse:
        review = await repo.get_review(request_id)
        if review is None:
            return problem(404, "not_found", "No review with this id.")
        task = await tasks.get(request_id)
        return JSONResponse(jsonable_encoder(call_tasks.task_view(task, review, rules)))

    @router.post("/v1/review/{request_id}/calls", summary="Record a call-back attempt")
    async def post_call(
        request_id: str,
        body: AttemptBody,
        verifier: str = signed_in,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        result = await call_tasks.record_attempt(
            request_id,
            verifier=verifier,
            outcome=body.outcome,
            note=body.note,
            key=idempotency_key,
            tasks=tasks,
            repo=repo,
            bus=ctx.bus,
            config=config,
            rules=rules,
            now=ctx.clock(),
        )
        if not result.ok:
            status = 404 if result.error == "not_found" else 409
            return problem(status, result.error, result.message)
        task = result.task or {}
        review = await repo.get_review(request_id) or {
            "_id": request_id,
            "flagged_at": task.get("flagged_at", ctx.clock()),
        }
        view = call_tasks.task_view(task, review, rules)
        return JSONResponse(jsonable_encoder(view), status_code=201)

    return router


def review_item(doc: dict[str, Any]) -> dict[str, Any]:
    """A review as verifiers see it: the request (they call the citizen back) and why."""
    submitted = doc.get("submitted", {})
    verification = doc.get("verification", {})
    return {
        "request_id": doc["_id"],
        "priority": doc.get("priority"),
        "green_channel": doc.get("green_channel", False),
        "reasons": doc.get("reasons", []),
        "category": doc.get("category"),
        "language": doc.get("language"),
        "submitted_at": doc.get("submitted_at"),
        "flagged_at": doc.get("flagged_at"),
        "phone_normalised": verification.get("phone"),
        "district": verification.get("district"),
        "request": submitted.get("request"),
        "claim": doc.get("claim"),
        # Flagged by the call rule (the citizen could not be reached); listed first.
        "escalated": bool(doc.get("escalated", False)),
        "escalated_reason": doc.get("escalated_reason"),
    }
