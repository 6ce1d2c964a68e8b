"""Intake's citizen pages: the request form at ``/``, the tracking page and its lookup, the
link the SMS sends (``/requests/<id>``) and the printable QR poster.

Entry points only translate the browser's forms to the handlers the JSON API uses: the same
validation (``HelpRequest``), the same rate limits, the same publish before the answer, the
same idempotency (the form's hidden key: every retry of one form is one request).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

import segno
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from services.intake import domain, handlers, tracking
from services.intake.api import web_rate_limit_wait
from services.intake.form import (
    district_name,
    district_options,
    field_errors,
    form_values,
    local_time,
    request_body,
)
from services.intake.handlers import IntakeContext
from services.intake.ratelimit import retry_after
from shared.schemas import CATEGORIES, SPECIAL_GROUPS, HelpRequest
from shared.web import Pages

EMPTY_FORM: dict[str, Any] = {**form_values({}, []), "special_groups": []}


def _key(value: object) -> str:
    """The form's idempotency key; a form without a usable one gets a new one."""
    if isinstance(value, str) and 8 <= len(value) <= 200 and value.isprintable():
        return value
    return uuid.uuid4().hex


def build_router(ctx: IntakeContext, pages: Pages) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    place = ctx.rules.jurisdiction
    refresh = ctx.settings.track_refresh_seconds

    def form_page(
        request: Request,
        *,
        key: str,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        problem: str = "",
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        return pages.render(
            request,
            "form.html",
            status_code=status_code,
            headers=headers,
            idempotency_key=key,
            values=values or EMPTY_FORM,
            errors=errors or {},
            problem=problem,
            categories=CATEGORIES,
            groups=SPECIAL_GROUPS,
            districts=district_options(place, pages.language(request)),
        )

    def track_url(code: str, request: Request, **extra: str) -> str:
        query = {"lang": pages.language(request), **extra}
        return f"/track/{code}?{urlencode(query)}"

    async def status_context(request: Request, request_id: str) -> dict[str, Any]:
        doc = await ctx.repo.get(request_id)
        view = domain.public_view(doc, place) if doc else None
        lang = pages.language(request)
        return {
            "view": view,
            "district_name": district_name(place, view.get("district"), lang) if view else None,
            "local_time": lambda at: local_time(at, place),
        }

    async def resolve(code: str) -> tuple[str, str | None] | None:
        """(canonical code, request id or None), or None when ``code`` is not a code."""
        canonical = tracking.normalise(code)
        if canonical is None:
            return None
        return canonical, await ctx.repo.request_of_code(canonical)

    def lookup_page(request: Request, code: str, error_key: str, status_code: int) -> Response:
        errors = {"code": pages.translator(request)(error_key)} if error_key else {}
        return pages.render(
            request, "lookup.html", status_code=status_code, code=code, errors=errors
        )

    async def looked_up(
        request: Request, code: str, *, invalid_status: int
    ) -> tuple[str, str] | Response:
        """(canonical code, request id), or the lookup page saying why not: not a code
        (``invalid_status``), or no request has it (404)."""
        found = await resolve(code)
        if found is None:
            return lookup_page(request, code, "lookup.invalid", invalid_status)
        canonical, request_id = found
        if request_id is None:
            return lookup_page(request, code, "lookup.not_found", 404)
        return canonical, request_id

    @router.get("/", response_class=HTMLResponse)
    async def request_form(request: Request) -> HTMLResponse:
        return form_page(request, key=uuid.uuid4().hex)

    @router.post("/", response_class=HTMLResponse)
    async def send_request(request: Request) -> Response:
        form = await pages.form(request)
        _ = pages.translator(request)
        key = _key(form.get("idempotency_key"))
        groups = [g for g in form.getlist("special_groups") if isinstance(g, str)]
        values = form_values(form, groups)
        try:
            body = HelpRequest.model_validate(
                request_body(form, groups, language=pages.language(request))
            )
        except ValidationError as exc:
            errors = field_errors(exc, _)
            return form_page(request, key=key, values=values, errors=errors, status_code=422)
        wait = await web_rate_limit_wait(request, ctx, phone=body.contact.phone)
        if wait > 0:
            seconds = retry_after(wait)
            problem = _("form.error.rate_limited", seconds=seconds)
            return form_page(
                request,
                key=key,
                values=values,
                problem=problem,
                status_code=429,
                headers={"Retry-After": seconds},
            )
        try:
            receipt = await handlers.submit(
                body, channel="web", client="web:anonymous", idempotency_key=key, ctx=ctx
            )
        except (KafkaError, TimeoutError):
            problem = _("form.error.unavailable")
            return form_page(
                request,
                key=key,
                values=values,
                problem=problem,
                status_code=503,
                headers={"Retry-After": "5"},
            )
        try:
            code = await handlers.tracking_code(ctx, receipt.request_id)
        except PyMongoError:
            # Accepted all the same; the status link draws the code once the store is back.
            lang = pages.language(request)
            return RedirectResponse(f"/requests/{receipt.request_id}?lang={lang}", 303)
        return RedirectResponse(track_url(code, request, sent="1"), status_code=303)

    @router.get("/track", response_class=HTMLResponse)
    async def lookup(
        request: Request, code: Annotated[str | None, Query(max_length=40)] = None
    ) -> Response:
        if code is None:
            return lookup_page(request, "", "", 200)
        found = await looked_up(request, code, invalid_status=400)
        if isinstance(found, Response):
            return found
        return RedirectResponse(track_url(found[0], request), status_code=303)

    @router.get("/track/{code}", response_class=HTMLResponse)
    async def track(request: Request, code: Annotated[str, Path(max_length=40)]) -> Response:
        found = await looked_up(request, code, invalid_status=404)
        if isinstance(found, Response):
            return found
        canonical, request_id = found
        if canonical != code:
            return RedirectResponse(track_url(canonical, request), status_code=303)
        return pages.render(
            request,
            "track.html",
            code=canonical,
            code_display=tracking.display(canonical),
            just_sent=request.query_params.get("sent") == "1",
            refresh_seconds=refresh,
            **await status_context(request, request_id),
        )

    @router.get("/track/{code}/status", response_class=HTMLResponse)
    async def track_status(request: Request, code: Annotated[str, Path(max_length=40)]) -> Response:
        found = await resolve(code)
        request_id = found[1] if found else None
        if request_id is None:
            return pages.error(request, 404, "lookup.not_found")
        return pages.render(
            request, "track_status.html", **await status_context(request, request_id)
        )

    @router.get("/requests/{request_id}", response_class=HTMLResponse)
    async def status_link(
        request: Request, request_id: Annotated[str, Path(max_length=128)]
    ) -> Response:
        """The SMS's status link: the request's tracking page (its code drawn if it has none)."""
        code = await ctx.repo.code_of(request_id)
        if code is None:
            if await ctx.repo.get(request_id) is None:
                return pages.error(request, 404, "track.not_yet")
            code = await handlers.tracking_code(ctx, request_id)
        return RedirectResponse(track_url(code, request), status_code=303)

    @router.get("/poster", response_class=HTMLResponse)
    async def poster(request: Request) -> HTMLResponse:
        form_url = f"{ctx.settings.public_base_url.rstrip('/')}/"
        svg = segno.make(form_url, error="m").svg_inline(scale=8, border=4, light="#ffffff")
        svg = svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)
        return pages.render(request, "poster.html", form_url=form_url, qr_svg=svg)

    return router
