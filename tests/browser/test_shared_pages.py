"""The shared page frame in Chromium, on a small app of its own: accessible, fits a 360 px
phone, its script runs under the CSP, the language switch works by keyboard, a form retried
over a failing network is sent with one idempotency key, and a form without a token is refused.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from playwright.async_api import Page, Route

from shared.web import Pages
from tests.browser.conftest import NewPage
from tests.browser.support import assert_fits_width, check_axe, console_errors
from tests.support.services import free_port

TEMPLATE = """{% extends "shared/base.html" %}
{% import "shared/macros.html" as ui with context %}
{% block title %}{{ _("demo.title") }}{% endblock %}
{% block content %}
<h1>{{ _("demo.title") }}</h1>
{{ ui.error_summary(errors, _("errors.summary")) }}
<form method="post" action="/send" data-idempotent novalidate>
  {{ ui.csrf_input() }}
  <input type="hidden" name="key" value="{{ key }}">
  {{ ui.text("phone", _("demo.phone"), errors=errors, hint=_("demo.hint"), type="tel",
             required=True) }}
  <p data-send-status aria-live="polite" data-retrying="{{ _('send.retrying') }}"></p>
  <button type="submit">{{ _("demo.send") }}</button>
</form>
<div aria-live="polite" data-refresh-url="/fragment" data-refresh-seconds="1">0</div>
<p>{{ "长" * 80 }}{{ "long" * 40 }}</p>
{% endblock %}
"""
MESSAGES = {
    "zh": ("演示表单", "电话", "手机号码", "提交"),
    "en": ("Demo form", "Phone", "Your mobile number", "Send"),
    "ru": ("Пример формы", "Телефон", "Номер мобильного", "Отправить"),
}


class DemoApp:
    def __init__(self, root: Path) -> None:
        (root / "templates").mkdir()
        (root / "templates" / "demo.html").write_text(TEMPLATE, "utf-8")
        (root / "messages").mkdir()
        for lang, (title, phone, hint, send) in MESSAGES.items():
            (root / "messages" / f"{lang}.toml").write_text(
                f'[demo]\ntitle = "{title}"\nphone = "{phone}"\nhint = "{hint}"\nsend = "{send}"\n',
                "utf-8",
            )
        self.pages = Pages(service="demo", package_dir=root, secret="browser-demo-secret")
        self.received: list[str] = []
        self.ticks = 0
        self.app = FastAPI()
        self.pages.install(self.app)
        self.app.get("/")(self.form)
        self.app.post("/send")(self.send)
        self.app.get("/done")(self.done)
        self.app.get("/fragment")(self.fragment)

    async def form(self, request: Request) -> HTMLResponse:
        return self.pages.render(request, "demo.html", errors={}, key=uuid.uuid4().hex)

    async def send(self, request: Request) -> Response:
        form = await self.pages.form(request)
        self.received.append(str(form.get("key")))
        if not str(form.get("phone", "")).strip():
            errors = {"phone": self.pages.translator(request)("demo.hint")}
            return self.pages.render(
                request, "demo.html", status_code=422, errors=errors, key=form.get("key")
            )
        return RedirectResponse("/done", status_code=303)

    async def done(self) -> PlainTextResponse:
        return PlainTextResponse("done")

    async def fragment(self) -> HTMLResponse:
        self.ticks += 1
        return HTMLResponse(f"tick {self.ticks}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoApp, str]]:
    app = DemoApp(tmp_path_factory.mktemp("demo"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app.app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_frame_is_accessible_fits_a_phone_and_runs_its_script(
    demo: tuple[DemoApp, str], phone: Page
) -> None:
    _app, url = demo
    await phone.goto(url + "/")
    assert await phone.get_attribute("html", "lang") == "zh-Hans"
    assert await phone.locator("h1").inner_text() == "演示表单"
    await check_axe(phone, "shared frame")
    await assert_fits_width(phone)
    # pages.js runs under the CSP: the fragment is reloaded into the live region.
    await phone.locator("[data-refresh-url]").filter(has_text="tick").wait_for()
    assert console_errors(phone) == []


async def test_language_switch_by_keyboard_is_remembered(
    demo: tuple[DemoApp, str], new_page: NewPage
) -> None:
    _app, url = demo
    page = await new_page("phone", lang="ru")
    await page.goto(url + "/")
    assert await page.locator("h1").inner_text() == "Пример формы"
    english = page.get_by_role("link", name="English")
    await english.focus()
    outline = await english.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none"  # focus is visible
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/?lang=en")
    assert await page.locator("h1").inner_text() == "Demo form"
    await page.goto(url + "/")
    assert await page.locator("html").get_attribute("lang") == "en"
    await check_axe(page, "shared frame (en)")


async def test_a_form_retried_over_a_failing_network_keeps_one_key(
    demo: tuple[DemoApp, str], phone: Page
) -> None:
    app, url = demo
    await phone.goto(url + "/")
    key = await phone.locator("input[name=key]").input_value()
    failures = {"left": 2}

    async def flaky(route: Route) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await phone.route("**/send", flaky)
    await phone.get_by_label("电话").fill("138 0013 8000")
    await phone.get_by_role("button", name="提交").click()
    await phone.wait_for_url("**/done")
    assert failures["left"] == 0
    assert app.received.count(key) == 1  # the two aborted tries never reached the server
    assert await phone.locator("body").inner_text() == "done"


async def test_errors_sit_next_to_their_field(demo: tuple[DemoApp, str], phone: Page) -> None:
    _app, url = demo
    await phone.goto(url + "/?lang=en")
    await phone.get_by_role("button", name="Send").click()
    field = phone.get_by_label("Phone")
    await phone.locator("#phone-error").wait_for()
    assert await field.get_attribute("aria-invalid") == "true"
    assert "phone-error" in (await field.get_attribute("aria-describedby") or "")
    await check_axe(phone, "shared frame with an error")


async def test_a_post_without_the_token_is_refused(demo: tuple[DemoApp, str], phone: Page) -> None:
    app, url = demo
    before = len(app.received)
    await phone.goto(url + "/")
    await phone.evaluate("document.querySelector('input[name=csrf_token]').remove()")
    # form.submit() sends the form as it is, past the page's own submit handler.
    async with phone.expect_response("**/send") as answer:
        await phone.evaluate("document.querySelector('form').submit()")
    assert (await answer.value).status == 403
    await phone.get_by_role("alert").wait_for()
    assert len(app.received) == before
