"""HTTP conventions shared by the services: error bodies, body-size limits, validation errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def problem(
    status: int, error: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A 4xx/5xx JSON answer: a stable error code, a human-readable reason, details."""
    return JSONResponse(
        {"error": error, "message": message, **extra}, status_code=status, headers=headers
    )


def key_required(header: str, key: str = "A key") -> JSONResponse:
    """401 for a request without a valid key in ``header`` (``key``: what kind of key)."""
    return problem(
        401,
        "unauthorised",
        f"{key} is required ({header}).",
        headers={"WWW-Authenticate": header},
    )


class KeyRequiredError(Exception):
    """A request without a valid key in ``header``: answered with :func:`key_required`'s 401
    (by :func:`install_error_handlers`)."""

    def __init__(self, header: str, key: str) -> None:
        super().__init__(header)
        self.header = header
        self.key = key


def key_holder(
    find: Callable[[str | None], str | None], header: str, key: str = "A key"
) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency: who holds the key presented in ``header`` (``find``: the holder
    of a key, or None), else :class:`KeyRequiredError`."""

    # A default, not an annotation: annotations are read as strings, without this scope.
    in_header = Header(default=None, alias=header.lower(), max_length=200)

    async def holder(presented: str | None = in_header) -> str:
        found = find(presented)
        if found is None:
            raise KeyRequiredError(header, key)
        return found

    return holder


def problems_from(exc: RequestValidationError) -> list[dict[str, str]]:
    """Each validation problem as {field, problem, type}; input values are not echoed back."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append(
            {
                "field": ".".join(loc) or "body",
                "problem": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeyRequiredError)
    async def on_key_required(request: Request, exc: KeyRequiredError) -> JSONResponse:
        return key_required(exc.header, exc.key)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = problems_from(exc)
        if any(p["type"] == "json_invalid" for p in problems):
            return problem(400, "malformed_json", "The body is not valid JSON.", problems=problems)
        return problem(
            422, "invalid_request", f"{len(problems)} problem(s) in the request.", problems=problems
        )


class HttpMiddleware:
    """A pure ASGI middleware of HTTP requests (:meth:`http`); other scopes (lifespan,
    websockets) pass through untouched. Cheaper than Starlette's ``BaseHTTPMiddleware``, which
    runs every request through a task group and memory streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodySizeLimit(HttpMiddleware):
    """Refuses bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if int(declared) <= DRAIN_FACTOR * self.max_bytes:
                # Read the body before answering, so that a client still sending it gets the
                # 413 rather than a reset connection; larger bodies are cut off unread.
                await _drain(receive)
            await self._too_large(send)
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # an answer to a body the app never fully got: replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Without a Content-Length the limit trips while the app reads; what reaches here
            # is _BodyTooLargeError, or another error wrapping it (an exception group from a
            # middleware's task group, a body-parsing error): a 500 or 400 before.
            if not too_large:
                raise
        if too_large and not started:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = problem(413, "body_too_large", f"The body exceeds {self.max_bytes} bytes.")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(response.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLargeError(Exception):
    pass


# Bodies declared up to this many times the limit are read (and dropped) before the 413.
DRAIN_FACTOR = 16


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
