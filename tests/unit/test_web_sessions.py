"""Staff sessions: the signed cookie round-trips, refuses tampering, other purposes, other
secrets and expiry, and is set HttpOnly, SameSite=Strict, on its path, Secure over TLS."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.testclient import TestClient

from shared.web.sessions import Sessions

pytestmark = pytest.mark.unit

SESSIONS = Sessions(secret="s3cret", cookie="staff", path="/console", purpose="verify-console")


def test_a_session_carries_its_principal() -> None:
    value = SESSIONS.issue("verifier-1", now=1000)
    session = SESSIONS.read(value, now=1001)
    assert session is not None
    assert session.principal == "verifier-1"
    assert session.expires == 1000 + SESSIONS.ttl_seconds
    assert "verifier-1" not in value  # the name is encoded, the key is not in it at all
    assert SESSIONS.issue("verifier-1", now=1000) != value  # a new id every time


def test_principals_with_any_characters_round_trip() -> None:
    value = SESSIONS.issue("核查员.甲|b", now=0)
    session = SESSIONS.read(value, now=1)
    assert session is not None
    assert session.principal == "核查员.甲|b"


@pytest.mark.parametrize(
    "other",
    [
        Sessions(secret="another", cookie="staff", path="/console", purpose="verify-console"),
        Sessions(secret="s3cret", cookie="staff", path="/board", purpose="board:medical"),
    ],
)
def test_a_session_opens_nothing_else(other: Sessions) -> None:
    assert other.read(SESSIONS.issue("verifier-1", now=0), now=1) is None


def test_tampered_or_expired_sessions_are_refused() -> None:
    value = SESSIONS.issue("verifier-1", now=0)
    sid, name, expires, signature = value.split(".")
    forged_name = "dmVyaWZpZXItMg"  # verifier-2
    for bad in (
        f"{sid}.{forged_name}.{expires}.{signature}",
        f"{sid}.{name}.{int(expires) + 3600}.{signature}",
        f"{sid}.{name}.{expires}.{'0' * 64}",
        value + ".x",
        "",
        None,
        "x" * 600,
    ):
        assert SESSIONS.read(bad, now=1) is None
    assert SESSIONS.read(value, now=int(expires)) is None  # expired


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/console/sign-in")
    async def sign_in(request: Request) -> Response:
        response = PlainTextResponse("ok")
        SESSIONS.start(response, request, "verifier-1")
        return response

    @app.get("/console/who")
    async def who(request: Request) -> Response:
        session = SESSIONS.current(request)
        return PlainTextResponse(session.principal if session else "nobody")

    @app.post("/console/sign-out")
    async def sign_out(request: Request) -> Response:
        response = PlainTextResponse("bye")
        SESSIONS.end(response, request)
        return response

    return app


def _cookie(header: str) -> dict[str, str | bool]:
    parsed = SimpleCookie()
    parsed.load(header)
    morsel = parsed["staff"]
    return {
        "httponly": bool(morsel["httponly"]),
        "samesite": str(morsel["samesite"]).lower(),
        "secure": bool(morsel["secure"]),
        "path": str(morsel["path"]),
    }


def test_the_cookie_is_httponly_strict_and_scoped() -> None:
    client = TestClient(_app(), base_url="http://staff.test")
    response = client.post("/console/sign-in")
    attrs = _cookie(response.headers["set-cookie"])
    assert attrs == {"httponly": True, "samesite": "strict", "secure": False, "path": "/console"}
    assert client.get("/console/who").text == "verifier-1"
    client.post("/console/sign-out")
    assert client.get("/console/who").text == "nobody"


def test_the_cookie_is_secure_over_tls() -> None:
    client = TestClient(_app(), base_url="https://staff.test")
    response = client.post("/console/sign-in")
    assert _cookie(response.headers["set-cookie"])["secure"] is True
