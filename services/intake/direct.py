"""``POST /v1/requests`` answered from the middleware layer, past FastAPI's routing.

The accept path is intake's hot route. Through FastAPI it paid for the exception and
exit-stack middlewares, matching every route in turn and the request handler's own set-up:
about a third of the request's CPU, for a route that declares no parameters and raises
nothing those layers handle. :class:`DirectAccept` sits innermost among the app's own
middlewares, so the body-size limit (and its 413), the HTTP metrics (under the route's
template) and the server's error handler still see every request; it calls the same function
the registered route calls (:func:`services.intake.api.accept_web`), so the answers, their
headers and the OpenAPI document stay those of the route.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake.api import ACCEPT_PATH, accept_web
from services.intake.handlers import IntakeContext
from shared.http import HttpMiddleware


class DirectAccept(HttpMiddleware):
    """Answers ``POST`` on ``route``'s path itself; everything else goes on to the app."""

    def __init__(self, app: ASGIApp, *, ctx: IntakeContext, route: APIRoute) -> None:
        super().__init__(app)
        self.ctx = ctx
        self.route = route
        self.path = route.path

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST" or scope["path"] != self.path or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        # What the router would have filled in: the metrics read the route's template.
        scope["route"] = self.route
        scope["endpoint"] = self.route.endpoint
        scope["path_params"] = {}
        client = scope.get("client")

        async def read_body() -> bytes:
            return await receive_body(receive)

        response = await accept_web(
            self.ctx,
            headers=header_map(scope["headers"]),
            read_body=read_body,
            peer=client[0] if client else None,
        )
        await response(scope, receive, send)


def header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers by (lower-case) name; of a repeated header the first value, as
    Starlette's ``Headers.get`` answers."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw)}


async def receive_body(receive: Receive) -> bytes:
    """The whole body, as ``Request.body()`` reads it (a client gone raises ClientDisconnect)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def install(app: FastAPI, ctx: IntakeContext, router: APIRouter) -> None:
    """Put :class:`DirectAccept` innermost among the app's own middlewares, for the accept
    route of ``router`` (call it before the app first answers; ``add_middleware`` would put
    it outermost)."""
    app.user_middleware.append(Middleware(DirectAccept, ctx=ctx, route=accept_route(router)))


def accept_route(router: APIRouter) -> APIRoute:
    """The ``POST /v1/requests`` route registered on ``router`` (the object the router puts
    in a request's scope as its route)."""
    for route in router.routes:
        methods = getattr(route, "methods", None) or set()
        if isinstance(route, APIRoute) and route.path == ACCEPT_PATH and "POST" in methods:
            return route
    raise LookupError(f"no POST {ACCEPT_PATH} route")
