"""The staff pages' guards, in process on the real database (no broker needed: nothing here
publishes): a page's actions need its session, a form needs its CSRF token and the token of one
session is worthless in another, a key opens only its own pages, and every page carries the CSP."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.route.app import build_app as build_route
from services.route.settings import RouteSettings
from services.verify.app import build_app as build_verify
from services.verify.settings import VerifySettings

pytestmark = pytest.mark.component

COMMAND_KEY, BOARD_KEY, VERIFIER_KEY = "desk-key", "medical-key", "verifier-key"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
async def database(mongodb_uri: str) -> AsyncIterator[str]:
    name = f"test_staff_{uuid.uuid4().hex[:10]}"
    yield name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def route(mongodb_uri: str, database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = RouteSettings(
        MONGODB_URI=mongodb_uri,
        MONGODB_DATABASE=database,
        command_keys={"desk-1": digest(COMMAND_KEY)},
        board_keys={"medical": digest(BOARD_KEY)},
    )
    app = build_route(settings, create_topics=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://staff.test") as client:
        yield client


@pytest.fixture
async def verify(mongodb_uri: str, database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = VerifySettings(
        MONGODB_URI=mongodb_uri,
        MONGODB_DATABASE=database,
        reviewer_keys={"verifier-1": VERIFIER_KEY},
    )
    app = build_verify(settings, create_topics=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://staff.test") as client:
        yield client


def token_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, path: str, key: str) -> httpx.Response:
    page = await client.get(path)
    return await client.post(
        f"{path}/sign-in", data={"csrf_token": token_of(page.text), "key": key}
    )


async def test_a_key_opens_its_own_pages_only(route: httpx.AsyncClient) -> None:
    assert (await sign_in(route, "/board/medical", COMMAND_KEY)).status_code == 401
    assert (await sign_in(route, "/command", BOARD_KEY)).status_code == 401
    signed = await sign_in(route, "/board/medical", BOARD_KEY)
    assert signed.status_code == 303
    assert "medical-key" not in signed.headers["location"]
    board = await route.get("/board/medical")
    assert "board_session" in route.cookies
    assert 'data-live-url="/board/medical/jobs"' in board.text
    assert "Content-Security-Policy" in board.headers
    assert "script-src 'self'" in board.headers["Content-Security-Policy"]
    # The medical board's session opens neither the command centre nor another board.
    assert 'name="key"' in (await route.get("/command")).text
    assert (await route.get("/board/police/jobs")).status_code == 401
    assert (await route.get("/command/owned")).status_code == 401


async def test_forms_need_the_sessions_csrf_token(route: httpx.AsyncClient) -> None:
    await sign_in(route, "/command", COMMAND_KEY)
    page = await route.get("/command")
    token = token_of(page.text)
    form = {"department": "medical", "reason": "wrong department"}
    good = await route.post(
        "/command/legs/no-such-leg/redispatch", data={**form, "csrf_token": token}
    )
    assert good.status_code == 404  # past the guard: the leg does not exist
    missing = await route.post("/command/legs/no-such-leg/redispatch", data=form)
    assert missing.status_code == 403
    # A token minted before sign-in (not bound to this session) is refused.
    fresh = httpx.AsyncClient(transport=route._transport, base_url="http://staff.test")
    async with fresh:
        unbound = token_of((await fresh.get("/command")).text)
    route.cookies.set("csrf", unbound)
    stolen = await route.post(
        "/command/legs/no-such-leg/redispatch", data={**form, "csrf_token": unbound}
    )
    assert stolen.status_code == 403


async def test_the_console_signs_in_and_out(verify: httpx.AsyncClient) -> None:
    assert (await sign_in(verify, "/console", "wrong")).status_code == 401
    signed = await sign_in(verify, "/console", VERIFIER_KEY)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert VERIFIER_KEY not in cookie
    console = await verify.get("/console")
    assert "verifier-1" in console.text
    queue = await verify.get("/console/queue")
    assert queue.status_code == 200
    out = await verify.post("/console/sign-out", data={"csrf_token": token_of(console.text)})
    assert out.status_code == 303
    assert (await verify.get("/console/queue")).status_code == 401
