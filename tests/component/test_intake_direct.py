"""``POST /v1/requests`` answered from the middleware layer (services/intake/direct.py): the
same answers, byte for byte, as the registered FastAPI route gives, the same size limit and
metrics, and FastAPI's router never entered for it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from starlette.types import Receive, Scope, Send

from services.intake.app import build_app
from services.intake.direct import DirectAccept, header_map
from services.intake.settings import IntakeSettings
from shared.metrics import registry
from tests.component.test_intake_channels import REQUEST, MemoryRepository

pytestmark = pytest.mark.component

FIXED = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)


@dataclass
class App:
    http: httpx.AsyncClient
    routed: list[str]  # requests FastAPI's router handed to the accept route


@contextlib.asynccontextmanager
async def running(*, direct: bool) -> AsyncIterator[App]:
    settings = IntakeSettings(topic_prefix="direct.", max_body_bytes=4096)
    broker = KafkaBroker()
    app = build_app(
        settings, broker=broker, create_topics=False, repo=MemoryRepository(), clock=lambda: FIXED
    )
    shortcut = next(m for m in app.user_middleware if m.cls is DirectAccept)
    route = shortcut.kwargs["route"]  # the registered route, as the router holds it
    if not direct:  # the app as it would be without the shortcut: FastAPI routes the request
        app.user_middleware.remove(shortcut)
    if app.state.intake.client_limiter is not None:  # no database here: admit at once
        app.state.intake.client_limiter.timeout_seconds = 0.01
    routed: list[str] = []
    handle = route.handle

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["method"])
        await handle(scope, receive, send)

    route.handle = counting
    async with TestKafkaBroker(broker):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield App(http, routed)


def body(**change: Any) -> bytes:
    return json.dumps({**REQUEST, **change}, ensure_ascii=False).encode()


JSON = {"content-type": "application/json"}


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


# Each case: what is sent (a fresh body iterator for chunked ones).
CASES: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("accepted", lambda: {"content": body(), "headers": {**JSON, "Idempotency-Key": "k-1"}}),
    ("replayed", lambda: {"content": body(), "headers": {**JSON, "Idempotency-Key": "k-1"}}),
    ("no content type", lambda: {"content": body(), "headers": {"Idempotency-Key": "k-2"}}),
    (
        "json suffix",
        lambda: {
            "content": body(),
            "headers": {"content-type": "application/x+json", "Idempotency-Key": "k-4"},
        },
    ),
    ("not json", lambda: {"content": b"{not json", "headers": JSON}),
    ("invalid", lambda: {"content": body(category="pizza", description=""), "headers": JSON}),
    ("text", lambda: {"content": body(), "headers": {"content-type": "text/plain"}}),
    ("long key", lambda: {"content": body(), "headers": {**JSON, "Idempotency-Key": "k" * 201}}),
    (
        "long client and bad body",
        lambda: {"content": b"[]", "headers": {**JSON, "X-Client-Id": "c" * 65}},
    ),
    ("declared too large", lambda: {"content": body(description="x" * 5000), "headers": JSON}),
    (
        "chunked too large",
        lambda: {"content": chunks(body(description="x" * 5000)), "headers": JSON},
    ),
    ("chunked", lambda: {"content": chunks(body()), "headers": {**JSON, "Idempotency-Key": "k-3"}}),
]


async def answers(app: App) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    out = []
    for _, send in CASES:
        answer = await app.http.post("/v1/requests", **send())
        out.append((answer.status_code, list(answer.headers.multi_items()), answer.content))
    # Five from one phone, then the sixth is refused with Retry-After.
    for n in range(6):
        answer = await app.http.post(
            "/v1/requests",
            content=body(contact={"phone": "+86 139 0000 0099"}),
            headers={**JSON, "Idempotency-Key": f"p-{n}"},
        )
        out.append((answer.status_code, list(answer.headers.multi_items()), answer.content))
    # Other methods and paths are the router's.
    for method, path in [("GET", "/v1/requests"), ("POST", "/v1/requests/")]:
        answer = await app.http.request(method, path, content=body(), headers=JSON)
        out.append((answer.status_code, list(answer.headers.multi_items()), answer.content))
    return out


async def test_the_direct_answers_are_the_routes_byte_for_byte() -> None:
    async with running(direct=False) as routed:
        expected = await answers(routed)
    async with running(direct=True) as direct:
        got = await answers(direct)
    statuses = [status for status, _, _ in got]
    assert statuses[: len(CASES)] == [202, 202, 202, 202, 400, 422, 415, 422, 422, 413, 413, 202]
    assert statuses[len(CASES) :] == [202] * 5 + [429, 405, 307]
    assert got == expected
    assert json.loads(got[1][2])["replayed"] is True


async def test_the_router_is_not_entered_for_the_accept_route() -> None:
    async with running(direct=True) as direct:
        await direct.http.post("/v1/requests", content=body(), headers=JSON)
        await direct.http.get("/v1/requests")
        assert direct.routed == ["GET"]
    async with running(direct=False) as routed:  # the count can fail
        await routed.http.post("/v1/requests", content=body(), headers=JSON)
        assert routed.routed == ["POST"]


def counted(status: str) -> float:
    labels = {"service": "intake", "route": "/v1/requests", "method": "POST", "status": status}
    return registry().get_sample_value("cityhelp_http_requests_total", labels) or 0.0


async def test_direct_answers_are_counted_under_the_routes_template() -> None:
    before = {status: counted(status) for status in ("202", "400", "415")}
    async with running(direct=True) as direct:
        await direct.http.post("/v1/requests", content=body(), headers=JSON)
        await direct.http.post("/v1/requests", content=body(), headers={"content-type": "a/b"})
        await direct.http.post("/v1/requests", content=b"{", headers=JSON)
        await direct.http.post("/v1/requests", content=b"{")
    assert {s: counted(s) - before[s] for s in before} == {"202": 1, "400": 2, "415": 1}


def test_of_a_repeated_header_the_first_value_counts() -> None:
    raw = [(b"idempotency-key", b"first"), (b"x-client-id", b"c"), (b"idempotency-key", b"2nd")]
    assert header_map(raw) == {"idempotency-key": "first", "x-client-id": "c"}
