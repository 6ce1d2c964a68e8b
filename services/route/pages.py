"""Route's staff pages: the department boards (``/board/<department>``) and the command centre
(``/command``), each signed in with its key into a session cookie of its own.

A board lists its department's open jobs by the deadline that falls next, with a countdown,
and offers 签收 (acknowledge), in progress, needs info, resolved and 退单 (reject back, with a
reason); each press publishes the department's report on ``help.status``, exactly as a
departmental system would (services/route/actions.py), and the board shows the change once
route's status consumer has applied it. The command centre shows live totals and charts
(inline SVG, services/route/page_views.py) and the legs it owns, with the re-dispatch action of
``POST /v1/command/legs/{leg_id}/redispatch``. Both pages poll for changes (services/route/
static/live.js).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.route import actions, api, board, redispatch
from services.route.handlers import RouteContext
from services.route.page_views import charts, local_time, signature
from shared.envelope import utcnow
from shared.keys import KeyDigests
from shared.schemas import CATEGORIES, DepartmentStatus
from shared.topics import Department
from shared.web import Pages
from shared.web.sessions import Session, Sessions

HERE: Final = Path(__file__).resolve().parent
FIELD_DEPARTMENTS: Final[tuple[Department, ...]] = ("police", "community", "medical")


def build_router(
    *, pages: Pages, ctx: RouteContext, command_keys: KeyDigests, board_keys: KeyDigests
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    command = Sessions(
        secret=pages.secret, cookie="command_session", path="/command", purpose="command"
    )

    def board_sessions(department: str) -> Sessions:
        return Sessions(
            secret=pages.secret,
            cookie="board_session",
            path=f"/board/{department}",
            purpose=f"board:{department}",
        )

    def sign_in_page(
        request: Request,
        *,
        title_key: str,
        action: str,
        error: str = "",
        status: int = 200,
        **values: str,
    ) -> HTMLResponse:
        _ = pages.translator(request)
        return pages.render(
            request,
            "shared/sign_in.html",
            status_code=status,
            title=_(title_key, **values),
            intro=_("staff.sign_in_intro"),
            action=action,
            key_label=_("staff.key"),
            submit=_("staff.sign_in"),
            error=error,
        )

    def desk_page(
        request: Request, session: Session, template: str, *, status: int = 200, **values: Any
    ) -> Response:
        """A page (or part of one) for a signed-in desk. Bound to its session like every page
        of it: an unbound render would replace the CSRF cookie, and the forms already on the
        page would be refused."""
        return pages.render(
            request,
            template,
            status_code=status,
            csrf_binding=session.id,
            me=session.principal,
            **values,
        )

    # ------------------------------------------------------------------------------ boards

    def department_of(value: str) -> Department | None:
        return next((d for d in FIELD_DEPARTMENTS if d == value), None)

    async def board_context(department: Department) -> dict[str, Any]:
        items = board.jobs(await ctx.repo.department_legs(department), now=utcnow())
        for item in items:
            item["due_local"] = local_time(item["due_at"])
            item["action_id"] = uuid.uuid4().hex
        return {
            "department": department,
            "items": items,
            "signature": signature(items, "leg_id", "progress"),
            "base": f"/board/{department}",
            "statuses": actions.BOARD_STATUSES,
        }

    async def board_page(
        request: Request,
        session: Session,
        department: Department,
        *,
        errors: dict[str, str] | None = None,
        status: int = 200,
        sent: str = "",
    ) -> Response:
        return desk_page(
            request,
            session,
            "board.html",
            status=status,
            errors=errors or {},
            sent=sent,
            **await board_context(department),
        )

    @router.get("/board/{department}", response_class=HTMLResponse)
    async def board_home(request: Request, department: str, sent: str = "") -> Response:
        dept = department_of(department)
        if dept is None:
            return pages.error(request, 404, "errors.not_found")
        session = board_sessions(dept).current(request)
        if session is None:
            return sign_in_page(
                request,
                title_key="board.title",
                action=f"/board/{dept}/sign-in",
                name=pages.translator(request)(f"department.{dept}"),
            )
        return await board_page(request, session, dept, sent=sent)

    @router.get("/board/{department}/jobs", response_class=HTMLResponse)
    async def board_jobs(request: Request, department: str) -> Response:
        dept = department_of(department)
        session = board_sessions(dept).current(request) if dept else None
        if dept is None or session is None:
            return pages.error(request, 401, "staff.signed_out")
        return desk_page(
            request, session, "board_jobs.html", errors={}, **await board_context(dept)
        )

    @router.post("/board/{department}/sign-in")
    async def board_sign_in(request: Request, department: str) -> Response:
        dept = department_of(department)
        if dept is None:
            return pages.error(request, 404, "errors.not_found")
        form = await pages.form(request)
        key = form.get("key")
        if board_keys.find(key if isinstance(key, str) else None) != dept:
            _ = pages.translator(request)
            return sign_in_page(
                request,
                title_key="board.title",
                action=f"/board/{dept}/sign-in",
                error=_("staff.bad_key"),
                status=401,
                name=_(f"department.{dept}"),
            )
        response = RedirectResponse(f"/board/{dept}", status_code=303)
        board_sessions(dept).start(response, request, f"board:{dept}")
        return response

    @router.post("/board/{department}/sign-out")
    async def board_sign_out(request: Request, department: str) -> Response:
        dept = department_of(department) or "police"
        sessions = board_sessions(dept)
        session = sessions.current(request)
        await pages.form(request, csrf_binding=session.id if session else "")
        response = RedirectResponse(f"/board/{dept}", status_code=303)
        sessions.end(response, request)
        return response

    @router.post("/board/{department}/legs/{leg_id}/report")
    async def board_report(request: Request, department: str, leg_id: str) -> Response:
        dept = department_of(department)
        session = board_sessions(dept).current(request) if dept else None
        if dept is None or session is None:
            return pages.error(request, 401, "staff.signed_out")
        form = await pages.form(request, csrf_binding=session.id)
        values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        status: DepartmentStatus | None = next(
            (s for s in actions.BOARD_STATUSES if s == values.get("status")), None
        )
        leg = await ctx.repo.get_leg(leg_id)
        _ = pages.translator(request)
        if status is None or leg is None or len(values.get("note", "")) > 500:
            return pages.error(request, 422, "board.bad_report")
        event = actions.board_report(
            leg,
            department=dept,
            status=status,
            note=values.get("note"),
            actor=session.principal,
            action_id=values.get("action_id") or uuid.uuid4().hex,
            at=utcnow(),
        )
        if isinstance(event, actions.BoardRefusal):
            errors = {leg_id: _(f"board.refused_{event.code}")}
            return await board_page(request, session, dept, errors=errors, status=422)
        await actions.publish_report(ctx, event)
        return RedirectResponse(f"/board/{dept}?sent={status}", status_code=303)

    # ------------------------------------------------------------------------------ command

    async def command_context() -> dict[str, Any]:
        overview = await api.command_overview(ctx)
        for item in overview["owned"]:
            item["dispatched_local"] = local_time(item["dispatched_at"])
        return {
            **overview,
            "charts": charts(overview["activity"]),
            "generated_local": local_time(overview["generated_at"]),
            "owned_signature": signature(overview["owned"], "leg_id"),
            "departments": FIELD_DEPARTMENTS,
            "categories": CATEGORIES,
        }

    async def command_page(
        request: Request,
        session: Session,
        *,
        errors: dict[str, dict[str, str]] | None = None,
        values: dict[str, str] | None = None,
        status: int = 200,
        moved: str = "",
        to: str = "",
    ) -> Response:
        return desk_page(
            request,
            session,
            "command.html",
            status=status,
            base="/command",
            errors=errors or {},
            values=values or {},
            moved=moved,
            to=to,
            **await command_context(),
        )

    @router.get("/command", response_class=HTMLResponse)
    async def command_home(request: Request, moved: str = "", to: str = "") -> Response:
        session = command.current(request)
        if session is None:
            return sign_in_page(request, title_key="command.title", action="/command/sign-in")
        return await command_page(request, session, moved=moved, to=to)

    @router.get("/command/totals", response_class=HTMLResponse)
    async def command_totals(request: Request) -> Response:
        session = command.current(request)
        if session is None:
            return pages.error(request, 401, "staff.signed_out")
        return desk_page(request, session, "command_totals.html", **await command_context())

    @router.get("/command/owned", response_class=HTMLResponse)
    async def command_owned(request: Request) -> Response:
        session = command.current(request)
        if session is None:
            return pages.error(request, 401, "staff.signed_out")
        return desk_page(
            request, session, "command_owned.html", errors={}, values={}, **await command_context()
        )

    @router.post("/command/sign-in")
    async def command_sign_in(request: Request) -> Response:
        form = await pages.form(request)
        key = form.get("key")
        desk = command_keys.find(key if isinstance(key, str) else None)
        if desk is None:
            error = pages.translator(request)("staff.bad_key")
            return sign_in_page(
                request,
                title_key="command.title",
                action="/command/sign-in",
                error=error,
                status=401,
            )
        response = RedirectResponse("/command", status_code=303)
        command.start(response, request, desk)
        return response

    @router.post("/command/sign-out")
    async def command_sign_out(request: Request) -> Response:
        session = command.current(request)
        await pages.form(request, csrf_binding=session.id if session else "")
        response = RedirectResponse("/command", status_code=303)
        command.end(response, request)
        return response

    @router.post("/command/legs/{leg_id}/redispatch")
    async def command_redispatch(request: Request, leg_id: str) -> Response:
        session = command.current(request)
        if session is None:
            return pages.error(request, 401, "staff.signed_out")
        form = await pages.form(request, csrf_binding=session.id)
        values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        _ = pages.translator(request)
        problems: dict[str, str] = {}
        department = next((d for d in FIELD_DEPARTMENTS if d == values.get("department")), None)
        category = next((c for c in CATEGORIES if c == values.get("category")), None)
        if values.get("department") and department is None:
            problems["department"] = _("command.pick_department")
        if values.get("category") and category is None:
            problems["category"] = _("command.pick_category")
        if department is None and category is None and not problems:
            problems["department"] = _("command.refused_nothing_to_change")
        reason = values.get("reason", "")
        if not reason:
            problems["reason"] = _("command.reason_required")
        elif len(reason) > 300:
            problems["reason"] = _("command.reason_too_long")
        if not problems:
            ask = redispatch.Ask(
                desk=session.principal, reason=reason, department=department, category=category
            )
            outcome = await actions.redispatch_leg(ctx, leg_id, ask)
            if outcome is None:
                return pages.error(request, 404, "errors.not_found")
            if isinstance(outcome, actions.Redispatched):
                return RedirectResponse(
                    f"/command?moved={outcome.job.request_id}&to={outcome.job.department}",
                    status_code=303,
                )
            field = "category" if outcome.code == "stays_with_command" else "department"
            problems[field] = _(f"command.refused_{outcome.code}")
        return await command_page(
            request, session, errors={leg_id: problems}, values=values, status=422
        )

    return router
