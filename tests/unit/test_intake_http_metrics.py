"""The HTTP metric middleware (a pure ASGI middleware, shared by the services and on intake's
hot path): every answer counted by route template, method and status."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.metrics import HTTP_REQUESTS, registry
from shared.runtime import _HttpMetrics

pytestmark = pytest.mark.unit

SERVICE = "metrics-middleware-test"


def counted(route: str, method: str, status: str) -> float:
    labels = {"service": SERVICE, "route": route, "method": method, "status": status}
    return registry().get_sample_value("cityhelp_http_requests_total", labels) or 0.0


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(_HttpMetrics, service=SERVICE)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> JSONResponse:
        return JSONResponse({"id": item_id}, status_code=200 if item_id != "gone" else 410)

    @app.post("/items", status_code=202)
    async def post_item() -> dict[str, str]:
        return {"status": "accepted"}

    return app


async def test_answers_are_counted_by_route_template_method_and_status() -> None:
    before = {
        key: counted(*key)
        for key in [
            ("/items/{item_id}", "GET", "200"),
            ("/items/{item_id}", "GET", "410"),
            ("/items", "POST", "202"),
            ("unmatched", "GET", "404"),
        ]
    }
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/items/1")).status_code == 200
        assert (await http.get("/items/2")).status_code == 200
        assert (await http.get("/items/gone")).status_code == 410
        assert (await http.post("/items")).status_code == 202
        assert (await http.get("/nowhere/13800138000")).status_code == 404
    after = {key: counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("/items/{item_id}", "GET", "200"): 2,
        ("/items/{item_id}", "GET", "410"): 1,
        ("/items", "POST", "202"): 1,
        ("unmatched", "GET", "404"): 1,
    }
    # The path itself (here with a phone-like segment) never becomes a label.
    assert not any(
        "13800138000" in str(sample.labels)
        for metric in HTTP_REQUESTS.collect()
        for sample in metric.samples
    )


def test_it_is_not_a_base_http_middleware() -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    assert not issubclass(_HttpMetrics, BaseHTTPMiddleware)
