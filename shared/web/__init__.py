"""Server-rendered pages for every service: Jinja2 templates, zh/en/ru, CSRF, static files, CSP.

Why server-rendered: the pages are forms, lists and timelines; Jinja2 renders them in the
language of the request, they work without script, and there is no front-end build to pin.
A little vanilla script (``/static/shared/pages.js``) adds retries, refreshing and printing.

Using it in a service (``services/<svc>/pages.py`` for the routes, templates beside it)::

    from shared.web import Pages

    pages = Pages(service="verify", package_dir=Path(__file__).parent,
                  secret=settings.page_secret)          # <SVC>_PAGE_SECRET
    pages.install(app)     # serves /static/shared/… and /static/verify/…, answers CSRF 403s

    @router.get("/console", response_class=HTMLResponse)
    async def console(request: Request) -> HTMLResponse:
        return pages.render(request, "console.html", items=items)

    @router.post("/console/claim")
    async def claim(request: Request) -> Response:
        form = await pages.form(request)                 # CSRF checked, else 403 page
        ...
        return RedirectResponse("/console", status_code=303)

Files of a service (all optional):
- ``templates/*.html``: the service's templates, found before the shared ones;
- ``static/…``: served at ``/static/<service>/…``;
- ``messages/{zh,en,ru}.toml``: its messages, merged over the shared catalogue.

Shared templates are named ``shared/…``:
- ``shared/base.html``: the page frame. Blocks: ``title``, ``head`` (extra ``<link>``),
  ``body_class`` (``wide`` for desktop-wide pages such as boards), ``home_href``, ``brand``,
  ``nav`` (under the header bar), ``content`` (inside ``<main id="main">``), ``footer``,
  ``scripts`` (extra ``<script src=… defer>``; no inline script: the CSP forbids it).
  It has a skip link, the language switch (``?lang=zh|en|ru``, remembered in the ``lang``
  cookie) and the shared style sheet.
- ``shared/macros.html`` (``{% import "shared/macros.html" as ui with context %}``):
  ``ui.csrf_input()`` (put it in every POST form), ``ui.text(name, label, value, errors,
  hint, type, required, attrs)``, ``ui.textarea(…)``, ``ui.select(name, label, options,
  value, errors, hint, required, placeholder)``, ``ui.error_summary(errors, title)``: fields
  are labelled, and an error (``errors[name]``) sits next to its field, tied to it with
  ``aria-describedby`` and ``aria-invalid``.
- ``shared/error.html``: what :meth:`Pages.error` renders.

Every template gets ``_`` (``_("key", **values)``: the message in the page's language),
``lang`` (``zh``/``en``/``ru``), ``html_lang``, ``languages``, ``csrf_token``, ``csrf_field``,
``static(owner, path)`` (``static("shared", "base.css")``, ``static("verify", "console.js")``:
URLs with a content hash), ``request``, ``service`` and ``home_url`` (``Pages(home_url=…)``,
default ``/``: where the brand link and the error page lead).

Behaviour in ``pages.js``, by attribute: ``<form data-idempotent>`` is sent by ``fetch`` and
retried on network failures with the same fields (keep an idempotency key in a hidden field);
an element with ``data-refresh-url="/fragment"`` (and ``data-refresh-seconds``) reloads its
content from that HTML fragment; a ``<button data-print>`` prints. Put ``aria-live="polite"``
on a refreshed element when its changes should be announced.

Language: :func:`shared.web.i18n.negotiate` (``?lang=``, then the cookie, then
``Accept-Language``, then zh). :meth:`Pages.translator` gives ``_`` to Python code (error
messages for a form). CSRF: :mod:`shared.web.csrf` (signed double submit; pass
``csrf_binding=<session id>`` to both ``render`` and ``form`` when the page has a session).
Staff pages sign in with a key typed into a form, which opens a signed session cookie
(:mod:`shared.web.sessions`: HttpOnly, SameSite=Strict, Secure over TLS, scoped to its pages'
path and purpose). Headers on every page: :data:`shared.web.pages.PAGE_HEADERS` (CSP with
``'self'`` only, no inline script or style, ``frame-ancestors 'none'``, ``no-store``,
``no-referrer``).
Accessibility rules the shared CSS follows: visible focus, AA contrast, 44 px touch targets,
no sideways scrolling at 360 px (wrap long words; wide tables go in ``<div class="table-box">``).
"""

from __future__ import annotations

from shared.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, Catalogue, Language, Translator, negotiate
from shared.web.pages import PAGE_HEADERS, CsrfRefusedError, Pages

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "PAGE_HEADERS",
    "Catalogue",
    "CsrfRefusedError",
    "Language",
    "Pages",
    "Translator",
    "negotiate",
]
