"""The shared page machinery in a small app of its own: headers, language, CSRF, static files."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from shared.web import PAGE_HEADERS, Pages
from shared.web.csrf import CSRF_COOKIE, CSRF_FIELD

pytestmark = pytest.mark.component
SECRET = "component-page-secret"


@pytest.fixture
def pages(tmp_path: Path) -> Pages:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.html").write_text(
        '{% extends "shared/base.html" %}{% import "shared/macros.html" as ui with context %}'
        '{% block content %}<h1>{{ _("demo.hello") }}</h1>'
        '<form method="post" action="/send">{{ ui.csrf_input() }}'
        '{{ ui.text("phone", _("demo.phone"), errors=errors, required=True) }}</form>'
        "{% endblock %}"
    )
    (tmp_path / "messages").mkdir()
    for lang, hello in (("zh", "你好"), ("en", "Hello"), ("ru", "Привет")):
        (tmp_path / "messages" / f"{lang}.toml").write_text(
            f'[demo]\nhello = "{hello}"\nphone = "phone-{lang}"\n'
        )
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "demo.js").write_text("console.log(1);\n")
    return Pages(service="demo", package_dir=tmp_path, secret=SECRET)


@pytest.fixture
def client(pages: Pages) -> httpx.AsyncClient:
    app = FastAPI()
    pages.install(app)

    @app.get("/hello")
    async def hello(request: Request) -> HTMLResponse:
        errors = {"phone": "bad"} if request.query_params.get("bad") else {}
        return pages.render(request, "hello.html", errors=errors)

    @app.post("/send")
    async def send(request: Request) -> PlainTextResponse:
        form = await pages.form(request)
        return PlainTextResponse(f"got {form.get('phone')}")

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_page_headers_and_default_language(client: httpx.AsyncClient) -> None:
    response = await client.get("/hello")
    assert response.status_code == 200
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<html lang="zh-Hans"' in response.text
    assert "<h1>你好</h1>" in response.text
    assert '<label for="phone">phone-zh' in response.text


async def test_language_from_header_query_and_cookie(client: httpx.AsyncClient) -> None:
    by_header = await client.get("/hello", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert "<h1>Привет</h1>" in by_header.text
    chosen = await client.get("/hello?lang=en", headers={"Accept-Language": "ru"})
    assert "<h1>Hello</h1>" in chosen.text
    assert chosen.cookies.get("lang") == "en"
    remembered = await client.get("/hello", headers={"Accept-Language": "ru"})
    assert "<h1>Hello</h1>" in remembered.text
    assert 'href="/hello?lang=ru"' in remembered.text


async def test_field_error_is_tied_to_its_field(client: httpx.AsyncClient) -> None:
    text = (await client.get("/hello?bad=1")).text
    assert 'id="phone-error"' in text
    assert 'aria-describedby="phone-error" aria-invalid="true"' in text


async def test_form_with_the_cookie_token_is_accepted(client: httpx.AsyncClient) -> None:
    page = await client.get("/hello")
    token = page.cookies[CSRF_COOKIE]
    assert f'name="{CSRF_FIELD}" value="{token}"' in page.text
    again = await client.get("/hello")
    assert CSRF_COOKIE not in again.cookies  # the valid cookie is kept, not replaced
    sent = await client.post("/send", data={CSRF_FIELD: token, "phone": "1"})
    assert sent.status_code == 200
    assert sent.text == "got 1"


async def test_form_without_or_with_a_foreign_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/hello")
    missing = await client.post("/send", data={"phone": "1"})
    assert missing.status_code == 403
    assert "刷新页面" in missing.text
    assert missing.headers["content-security-policy"] == PAGE_HEADERS["Content-Security-Policy"]
    client.cookies.clear()
    forged = "a.1800000000." + "0" * 64
    client.cookies.set(CSRF_COOKIE, forged)
    refused = await client.post("/send", data={CSRF_FIELD: forged, "phone": "1"})
    assert refused.status_code == 403


async def test_static_files_of_shared_and_service(client: httpx.AsyncClient, pages: Pages) -> None:
    shared = await client.get(pages.static("shared", "base.css").split("?")[0])
    assert shared.status_code == 200
    assert shared.headers["x-content-type-options"] == "nosniff"
    own = await client.get("/static/demo/demo.js")
    assert own.text == "console.log(1);\n"
    page = (await client.get("/hello")).text
    assert pages.static("shared", "pages.js") in page
