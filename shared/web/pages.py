"""A service's pages: templates, languages, CSRF, static files and security headers.

See the package docstring (``shared/web/__init__.py``) for how a service uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web import csrf
from shared.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANGUAGES,
    NATIVE_NAMES,
    Catalogue,
    Language,
    Translator,
    as_language,
    negotiate,
)

WEB_DIR: Final = Path(__file__).resolve().parent
# Everything from the service itself; no inline script or style, no frames, forms post home.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Page addresses may carry a tracking token: never hand them to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}
STATIC_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=3600"}
ONE_YEAR: Final = 365 * 24 * 3600


class CsrfRefusedError(Exception):
    """A POST whose CSRF token is missing, stale or not this service's (answered with 403)."""


class StaticHeaders:
    """Pure ASGI: adds fixed headers to every response of the wrapped app (static files)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.raw]
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Pages:
    """One service's page machinery; build one in the service's ``app.py``."""

    service: str
    package_dir: Path
    secret: str
    # Where the brand and the error page lead (a service without a start page of its own
    # points at the citizens' form, for example).
    home_url: str = "/"
    env: jinja2.Environment = field(init=False)
    catalogue: Catalogue = field(init=False)
    _versions: dict[tuple[str, str], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(self.package_dir / "templates"),
                    jinja2.PrefixLoader({"shared": jinja2.FileSystemLoader(WEB_DIR / "templates")}),
                ]
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["static"] = self.static
        self.catalogue = Catalogue.load([WEB_DIR / "messages", self.package_dir / "messages"])

    # --- wiring -------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Serves ``/static/shared/…`` and ``/static/<service>/…``; answers CSRF refusals."""
        app.mount(
            "/static/shared",
            StaticHeaders(StaticFiles(directory=WEB_DIR / "static"), STATIC_HEADERS),
            name="static-shared",
        )
        own = self.package_dir / "static"
        if own.is_dir():
            app.mount(
                f"/static/{self.service}",
                StaticHeaders(StaticFiles(directory=own), STATIC_HEADERS),
                name=f"static-{self.service}",
            )

        @app.exception_handler(CsrfRefusedError)
        async def on_csrf(request: Request, exc: CsrfRefusedError) -> HTMLResponse:
            return self.error(request, 403, "errors.csrf")

    def static(self, owner: str, path: str) -> str:
        """URL of a static file (``owner``: ``shared`` or the service), with a content hash."""
        key = (owner, path)
        if key not in self._versions:
            root = WEB_DIR / "static" if owner == "shared" else self.package_dir / "static"
            digest = hashlib.sha256((root / path).read_bytes()).hexdigest()[:10]
            self._versions[key] = digest
        return f"/static/{owner}/{path}?v={self._versions[key]}"

    # --- per request --------------------------------------------------------------------

    def language(self, request: Request) -> Language:
        return negotiate(
            query=request.query_params.get("lang"),
            cookie=request.cookies.get(LANG_COOKIE),
            accept_language=request.headers.get("accept-language"),
        )

    def translator(self, request: Request) -> Translator:
        return self.catalogue.translator(self.language(request))

    def language_links(self, request: Request) -> list[dict[str, Any]]:
        """The language switch: this page in each language (``?lang=`` kept with the rest)."""
        links = []
        for lang in LANGUAGES:
            query = {k: v for k, v in request.query_params.items() if k != "lang"}
            query["lang"] = lang
            links.append(
                {
                    "lang": lang,
                    "html_lang": HTML_LANG[lang],
                    "name": NATIVE_NAMES[lang],
                    "href": f"{request.url.path}?{urlencode(query)}",
                }
            )
        return links

    def render(
        self,
        request: Request,
        template: str,
        *,
        status_code: int = 200,
        csrf_binding: str = "",
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The page ``template`` in the request's language, with a CSRF token and the headers.

        Templates get ``_`` (the translator), ``lang``, ``html_lang``, ``languages`` (the
        switch), ``csrf_token``, ``csrf_field`` (its name), ``static(owner, path)``,
        ``request``, ``service`` and ``home_url``, plus ``context``.
        """
        lang = self.language(request)
        cookie = request.cookies.get(csrf.CSRF_COOKIE)
        fresh = not csrf.signed(self.secret, cookie, binding=csrf_binding)
        token = csrf.issue(self.secret, binding=csrf_binding) if fresh else str(cookie)
        html = self.env.get_template(template).render(
            _=self.catalogue.translator(lang),
            lang=lang,
            html_lang=HTML_LANG[lang],
            languages=self.language_links(request),
            csrf_token=token,
            csrf_field=csrf.CSRF_FIELD,
            request=request,
            service=self.service,
            home_url=self.home_url,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS})
        for name, value in (headers or {}).items():
            response.headers[name] = value
        secure = request.url.scheme == "https"
        if fresh:
            response.set_cookie(
                csrf.CSRF_COOKIE,
                token,
                max_age=csrf.MAX_AGE_SECONDS,
                httponly=True,
                samesite="lax",
                secure=secure,
            )
        chosen = as_language(request.query_params.get("lang"))
        if chosen is not None and chosen != request.cookies.get(LANG_COOKIE):
            response.set_cookie(
                LANG_COOKIE, chosen, max_age=ONE_YEAR, samesite="lax", secure=secure
            )
        return response

    def error(
        self, request: Request, status_code: int, message_key: str, **values: object
    ) -> HTMLResponse:
        """A small error page (``shared/error.html``) with a translated message."""
        return self.render(
            request,
            "shared/error.html",
            status_code=status_code,
            status=status_code,
            message=self.translator(request)(message_key, **values),
        )

    async def form(self, request: Request, *, csrf_binding: str = "") -> FormData:
        """The posted form, once its CSRF token is checked (else :class:`CsrfRefusedError`).

        The token may come in the form field ``csrf_token`` or the ``X-CSRF-Token`` header
        (for a script's ``fetch``); it must equal the ``csrf`` cookie.
        """
        data = await request.form()
        submitted = data.get(csrf.CSRF_FIELD)
        if not isinstance(submitted, str):
            submitted = request.headers.get(csrf.CSRF_HEADER)
        if not csrf.check(
            self.secret,
            cookie=request.cookies.get(csrf.CSRF_COOKIE),
            submitted=submitted,
            binding=csrf_binding,
        ):
            raise CsrfRefusedError
        return data
