"""Route's HTTP API: the command centre's totals, activity, owned legs and re-dispatch
(``X-Command-Key``), and the department boards' jobs and reports (``X-Board-Key``).

A board's report is published on ``help.status`` exactly as a departmental system would
publish it; route's status consumer applies it. Answers carry no personal data except a
board's own jobs (the team calls the citizen, as it would from the job on its topic).
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.route import actions, board, command, info, redispatch
from services.route.handlers import RouteContext
from shared import requests_store
from shared.http import key_required, problem
from shared.keys import KeyDigests
from shared.schemas import Category, DepartmentStatus
from shared.topics import Department

logger = logging.getLogger(__name__)


class RedispatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department: Department | None = None  # "command" is refused by the rule, with why
    category: Category | None = None
    reason: Annotated[str, Field(min_length=1, max_length=300)]


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: DepartmentStatus
    note: Annotated[str, Field(max_length=500)] | None = None
    # Names one press of the button, so a retried report is one event (a new one if absent).
    action_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class InfoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(min_length=1, max_length=2000)]


REFUSAL_STATUS = {"nothing_to_change": 422, "stays_with_command": 422}


async def command_overview(ctx: RouteContext) -> dict[str, Any]:
    """Totals, charts and the owned legs: everything the command centre's page shows."""
    now = ctx.clock()
    docs = await requests_store.scan(ctx.repo.db, command.FIELDS)
    leg_docs = await ctx.repo.all_legs(command.LEG_FIELDS)
    owned = await ctx.repo.command_legs()
    parents = {}
    for leg in owned:
        if leg.parent and not leg.blocking:
            parent = await ctx.repo.get_leg(leg.parent)
            if parent is not None:
                parents[leg.parent] = parent
    return {
        "summary": command.summarise(docs),
        "activity": command.activity(docs, leg_docs, now=now),
        "owned": command.owned_list(owned, parents),
        "generated_at": now,
    }


async def redispatch_answer(
    ctx: RouteContext, leg_id: str, body: RedispatchBody, *, desk: str
) -> JSONResponse:
    ask = redispatch.Ask(
        desk=desk, reason=body.reason.strip(), department=body.department, category=body.category
    )
    outcome = await actions.redispatch_leg(ctx, leg_id, ask)
    if outcome is None:
        return problem(404, "not_found", "No leg with this id.")
    if isinstance(outcome, redispatch.Refusal):
        return problem(REFUSAL_STATUS.get(outcome.code, 409), outcome.code, outcome.message)
    job = outcome.job
    return JSONResponse(
        jsonable_encoder(
            {
                "request_id": job.request_id,
                "leg_id": job.leg_id,
                "department": job.department,
                "team_id": job.team_id,
                "category": job.category,
                "replaced": list(outcome.replaced),
                "replayed": outcome.replayed,
            }
        )
    )


async def report_answer(
    ctx: RouteContext, department: Department, leg_id: str, body: ReportBody
) -> JSONResponse:
    leg = await ctx.repo.get_leg(leg_id)
    if leg is None:
        return problem(404, "not_found", "No job with this id.")
    event = actions.board_report(
        leg,
        department=department,
        status=body.status,
        note=body.note,
        actor=f"board:{department}",
        action_id=body.action_id or uuid.uuid4().hex,
        at=ctx.clock(),
    )
    if isinstance(event, actions.BoardRefusal):
        status = 422 if event.code == "note_required" else 409
        return problem(status, event.code, event.message)
    await actions.publish_report(ctx, event)
    return JSONResponse(
        jsonable_encoder({"event_id": event.event_id, "status": event.status}), status_code=202
    )


def build_router(ctx: RouteContext, command_keys: KeyDigests, board_keys: KeyDigests) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/command/summary", summary="Totals by status, category and district")
    async def summary(
        x_command_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        desk = command_keys.find(x_command_key)
        if desk is None:
            return key_required("X-Command-Key")
        # A whole-collection read, on a rare request (a dashboard refresh), three small fields.
        docs = await requests_store.scan(ctx.repo.db, command.FIELDS)
        logger.info("command summary served", extra={"desk": desk, "total": len(docs)})
        body = {**command.summarise(docs), "generated_at": ctx.clock()}
        return JSONResponse(jsonable_encoder(body))

    @router.get("/v1/command/overview", summary="Totals, charts and the legs the centre owns")
    async def overview(
        x_command_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        if command_keys.find(x_command_key) is None:
            return key_required("X-Command-Key")
        return JSONResponse(jsonable_encoder(await command_overview(ctx)))

    @router.post(
        "/v1/command/legs/{leg_id}/redispatch",
        summary="Re-dispatch or re-categorise a leg the command centre owns",
    )
    async def redispatch_route(
        leg_id: str,
        body: RedispatchBody,
        x_command_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        desk = command_keys.find(x_command_key)
        if desk is None:
            return key_required("X-Command-Key")
        return await redispatch_answer(ctx, leg_id, body, desk=desk)

    @router.get("/v1/board/{department}/jobs", summary="A department's open jobs by deadline")
    async def board_jobs(
        department: Department,
        x_board_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        if board_keys.find(x_board_key) != department:
            return key_required("X-Board-Key")
        items = board.jobs(await ctx.repo.department_legs(department), now=ctx.clock())
        return JSONResponse(jsonable_encoder({"items": items, "count": len(items)}))

    @router.post(
        "/v1/board/{department}/legs/{leg_id}/report",
        summary="Report on a job; published on help.status as a departmental system would",
        status_code=202,
    )
    async def board_report_route(
        department: Department,
        leg_id: str,
        body: ReportBody,
        x_board_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> JSONResponse:
        if board_keys.find(x_board_key) != department:
            return key_required("X-Board-Key")
        return await report_answer(ctx, department, leg_id, body)

    @router.post(
        "/v1/requests/{request_id}/info",
        summary="The citizen adds what a department asked for (X-Tracking-Token)",
        status_code=202,
    )
    async def add_info_route(
        request_id: str,
        body: InfoBody,
        x_tracking_token: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        added = await info.add_info(
            ctx, request_id, token=x_tracking_token, text=body.text.strip(), at=ctx.clock()
        )
        if isinstance(added, info.Refusal):
            return problem(added.http_status, added.code, added.message)
        return JSONResponse(
            {"request_id": request_id, "event_id": added.event_id, "status": info.INFO_ADDED},
            status_code=202,
        )

    return router
