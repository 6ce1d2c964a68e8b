"""The verifier console (``/console``): sign in with the verifier's key (a form; the key opens a
session cookie and never goes in a URL), the review queue by priority and age, a review's
request and why it is in review, claim it, decide it (verify, correcting the category or the
district; or reject with a reason). Another verifier's claim is shown with its expiry.

Every action goes through the same repository and handler calls as the review API
(services/verify/api.py), so a decision here publishes exactly what the API's would.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.verify import domain, handlers
from services.verify.api import review_item
from services.verify.review import ReviewDecision, decide_review
from shared.keys import KeyDigests
from shared.schemas import CATEGORIES
from shared.web import Pages
from shared.web.sessions import Session, Sessions

HERE: Final = Path(__file__).resolve().parent
LOCAL: Final = ZoneInfo("Asia/Shanghai")
BASE: Final = "/console"


def local_time(at: datetime | str | None) -> str:
    if at is None:
        return ""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


def claim_view(claim: dict[str, Any] | None, *, me: str, now: datetime) -> dict[str, Any]:
    """Whose claim it is and until when: ``none``, ``mine``, ``other`` or ``expired``."""
    if not claim:
        return {"state": "none"}
    expires = claim["expires_at"]
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    state = "expired" if expires <= now else "mine" if claim["verifier"] == me else "other"
    return {"state": state, "verifier": claim["verifier"], "until": local_time(expires)}


def waiting_minutes(submitted_at: datetime | str | None, now: datetime) -> int:
    if submitted_at is None:
        return 0
    when = datetime.fromisoformat(submitted_at) if isinstance(submitted_at, str) else submitted_at
    return max(0, int((now - when).total_seconds() // 60))


def build_router(*, pages: Pages, ctx: handlers.VerifyContext, keys: KeyDigests) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    repo, config, utcnow = ctx.repo, ctx.config, ctx.clock
    sessions = Sessions(
        secret=pages.secret, cookie="verifier_session", path=BASE, purpose="verify-console"
    )
    districts = [(d.code, d.name_zh, d.name_en) for d in config.jurisdiction.districts]

    def sign_in_page(request: Request, *, error: str = "", status: int = 200) -> HTMLResponse:
        _ = pages.translator(request)
        return pages.render(
            request,
            "shared/sign_in.html",
            status_code=status,
            title=_("console.title"),
            intro=_("console.sign_in_intro"),
            action=f"{BASE}/sign-in",
            key_label=_("console.key"),
            submit=_("console.sign_in"),
            error=error,
        )

    def render(request: Request, session: Session, template: str, **context: Any) -> Response:
        return pages.render(
            request,
            template,
            csrf_binding=session.id,
            me=session.principal,
            base=BASE,
            districts=districts,
            categories=CATEGORIES,
            **context,
        )

    async def queue_items(me: str) -> list[dict[str, Any]]:
        now = utcnow()
        items = []
        for doc in await repo.open_reviews(config.rules.review_list_limit):
            item = review_item(doc)
            item["claim_view"] = claim_view(item["claim"], me=me, now=now)
            item["waiting"] = waiting_minutes(item["submitted_at"], now)
            items.append(item)
        return items

    @router.get(BASE, response_class=HTMLResponse)
    async def console(request: Request, done: str = "", outcome: str = "") -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_page(request)
        items = await queue_items(session.principal)
        return render(request, session, "console.html", items=items, done=done, outcome=outcome)

    @router.get(f"{BASE}/queue", response_class=HTMLResponse)
    async def queue(request: Request) -> Response:
        """The queue alone: what the console page reloads every few seconds."""
        session = sessions.current(request)
        if session is None:
            return pages.error(request, 401, "console.signed_out")
        items = await queue_items(session.principal)
        return render(request, session, "console_queue.html", items=items)

    @router.post(f"{BASE}/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await pages.form(request)
        key = form.get("key")
        verifier = keys.find(key if isinstance(key, str) else None)
        if verifier is None:
            return sign_in_page(
                request, error=pages.translator(request)("console.bad_key"), status=401
            )
        response = RedirectResponse(BASE, status_code=303)
        sessions.start(response, request, verifier)
        return response

    @router.post(f"{BASE}/sign-out")
    async def sign_out(request: Request) -> Response:
        session = sessions.current(request)
        await pages.form(request, csrf_binding=session.id if session else "")
        response = RedirectResponse(BASE, status_code=303)
        sessions.end(response, request)
        return response

    async def review_page(
        request: Request,
        session: Session,
        request_id: str,
        *,
        errors: dict[str, str] | None = None,
        notice: str = "",
        status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:
        doc = await repo.get_review(request_id)
        if doc is None or doc.get("state") != "open":
            return pages.error(request, 404, "console.not_open")
        claim = await repo.claim_of(request_id)
        item = review_item({**doc, "claim": claim})
        item["claim_view"] = claim_view(claim, me=session.principal, now=utcnow())
        item["waiting"] = waiting_minutes(item["submitted_at"], utcnow())
        return render(
            request,
            session,
            "review.html",
            status_code=status,
            item=item,
            errors=errors or {},
            notice=notice,
            values=values or {},
        )

    @router.get(BASE + "/review/{request_id}", response_class=HTMLResponse)
    async def review(request: Request, request_id: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_page(request)
        return await review_page(request, session, request_id)

    @router.post(BASE + "/review/{request_id}/claim")
    async def claim(request: Request, request_id: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_page(request, status=401)
        await pages.form(request, csrf_binding=session.id)
        result = await repo.claim(
            request_id, verifier=session.principal, now=utcnow(), ttl=config.rules.claim_ttl
        )
        if result.outcome in ("missing", "closed"):
            return pages.error(request, 404, "console.not_open")
        if result.outcome == "taken":
            _ = pages.translator(request)
            notice = _(
                "console.claim_taken",
                verifier=result.verifier or "?",
                until=local_time(result.expires_at),
            )
            return await review_page(request, session, request_id, notice=notice, status=409)
        return RedirectResponse(f"{BASE}/review/{request_id}", status_code=303)

    @router.post(BASE + "/review/{request_id}/decision")
    async def decide(request: Request, request_id: str) -> Response:
        session = sessions.current(request)
        if session is None:
            return sign_in_page(request, status=401)
        form = await pages.form(request, csrf_binding=session.id)
        values = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        _ = pages.translator(request)
        errors: dict[str, str] = {}
        kind = values.get("decision", "")
        if kind not in ("verify", "reject"):
            errors["decision"] = _("console.pick_decision")
        if kind == "reject" and not values.get("reason"):
            errors["reason"] = _("console.reason_required")
        if len(values.get("reason", "")) > 500:
            errors["reason"] = _("console.reason_too_long")
        category = next((c for c in CATEGORIES if c == values.get("category")), None)
        if values.get("category") and category is None:
            errors["category"] = _("console.pick_category")
        if errors:
            return await review_page(
                request, session, request_id, errors=errors, values=values, status=422
            )
        doc = await repo.get_review(request_id)
        original = (doc or {}).get("verification", {})
        district = values.get("district") or None
        choice = ReviewDecision(
            "verify" if kind == "verify" else "reject",
            domain.Corrections(
                district=district if district != original.get("district") else None,
                category=category if category != (doc or {}).get("category") else None,
            ),
            reason=values.get("reason") or None,
        )
        outcome = await decide_review(request_id, choice, verifier=session.principal, ctx=ctx)
        if not outcome.ok:
            field = {"reason_required": "reason", "invalid_correction": "district"}.get(
                outcome.error, "decision"
            )
            errors[field] = _(f"console.error_{outcome.error}")
            return await review_page(
                request, session, request_id, errors=errors, values=values, status=409
            )
        return RedirectResponse(
            f"{BASE}?done={request_id}&outcome={outcome.status}", status_code=303
        )

    return router
