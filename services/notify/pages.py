"""Notify's page: the call-back survey the SMS links to (``/surveys/<request id>?s=<sig>``).

GET shows the question, POST answers it through the same handler as the survey API
(``surveys.answer_survey``), which stays as it is for other clients. Only a link notify signed
(``domain.survey_signature``) opens the survey: the SMS went to the citizen's phone.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.notify import domain, handlers, surveys
from shared.envelope import utcnow
from shared.schemas import SurveyAnswer
from shared.web import Pages

COMMENT_MAX = 1000


def build_router(ctx: handlers.NotifyContext, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def survey_page(
        request: Request,
        request_id: str,
        signature: str,
        survey: dict[str, Any],
        *,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        problem: str = "",
        status_code: int = 200,
    ) -> HTMLResponse:
        return pages.render(
            request,
            "survey.html",
            status_code=status_code,
            request_id=request_id,
            signature=signature,
            answer=survey.get("answer"),
            category=survey.get("category"),
            errors=errors or {},
            values=values or {"satisfied": "", "comment": ""},
            problem=problem,
            comment_max=COMMENT_MAX,
        )

    async def open_survey(
        request: Request, request_id: str, signature: str | None
    ) -> dict[str, Any] | Response:
        if not domain.survey_signed(ctx.survey_link_secret, request_id, signature):
            return pages.error(request, 403, "survey.bad_link")
        survey = await ctx.repo.get_survey(request_id)
        if survey is None:
            return pages.error(request, 404, "survey.none")
        return survey

    @router.get("/surveys/{request_id}", response_class=HTMLResponse)
    async def show(
        request: Request,
        request_id: Annotated[str, Path(max_length=128)],
        s: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        survey = await open_survey(request, request_id, s)
        if isinstance(survey, Response):
            return survey
        return survey_page(request, request_id, s or "", survey)

    @router.post("/surveys/{request_id}", response_class=HTMLResponse)
    async def answer(
        request: Request, request_id: Annotated[str, Path(max_length=128)]
    ) -> Response:
        form = await pages.form(request)
        signature = str(form.get("s") or "")
        survey = await open_survey(request, request_id, signature)
        if isinstance(survey, Response):
            return survey
        _ = pages.translator(request)
        choice = str(form.get("satisfied") or "")
        comment = str(form.get("comment") or "").strip()
        values = {"satisfied": choice, "comment": comment}
        errors = {}
        if choice not in ("yes", "no"):
            errors["satisfied"] = _("survey.error.choose")
        if len(comment) > COMMENT_MAX:
            errors["comment"] = _("survey.error.too_long", limit=COMMENT_MAX)
        if errors:
            return survey_page(
                request,
                request_id,
                signature,
                survey,
                errors=errors,
                values=values,
                status_code=422,
            )
        answer = SurveyAnswer(
            request_id=request_id,
            satisfied=choice == "yes",
            comment=comment or None,
            answered_at=utcnow(),
        )
        try:
            await surveys.answer_survey(ctx, answer, source="page")
        except surveys.SurveyRefusedError as exc:
            return survey_page(
                request,
                request_id,
                signature,
                survey,
                problem=_(f"survey.refused.{exc.code}"),
                status_code=exc.http_status,
            )
        except (KafkaError, TimeoutError):
            return survey_page(
                request,
                request_id,
                signature,
                survey,
                values=values,
                problem=_("survey.unavailable"),
                status_code=503,
            )
        query = urlencode({"lang": pages.language(request), "s": signature})
        return RedirectResponse(f"/surveys/{request_id}?{query}", status_code=303)

    return router
