"""Intake's HTTP protocol (services/intake/server.py) on a real socket: a request httptools
cannot parse gets its 400 even while the client is still sending a large body, and the
connection ends once the client stops; well-formed requests are served as before."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from services.intake import server
from services.intake.server import LingeringHttpToolsProtocol

pytestmark = pytest.mark.component


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=LingeringHttpToolsProtocol, log_config=None
    )
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    while not instance.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        instance.should_exit = True
        await task


async def post(port: int, head: bytes, body: bytes) -> bytes:
    """Send the whole request (in pieces, as a slow client would), then read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for start in range(0, len(body), 16_384):
            writer.write(body[start : start + 16_384])
            await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


BODY = b"x" * 1_500_000


async def test_a_malformed_request_with_a_large_body_gets_its_400() -> None:
    # A control character in a header value: llhttp refuses the request at its headers.
    head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Junk: a\x1bb\r\nContent-Length: %d\r\n\r\n"
    async with serving() as port:
        for _ in range(3):
            answer = await post(port, head % len(BODY), BODY)
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
            assert answer.endswith(b"Invalid HTTP request received.")


async def test_well_formed_requests_are_answered_on_a_kept_alive_connection() -> None:
    async with serving() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                status = await asyncio.wait_for(reader.readline(), timeout=5)
                assert status.startswith(b"HTTP/1.1 202 ")
                while (await reader.readline()) != b"\r\n":
                    pass
                assert await reader.readexactly(2) == b"ok"
        finally:
            writer.close()


def test_the_parser_is_chosen_by_the_setting() -> None:
    assert server.protocol("httptools") is LingeringHttpToolsProtocol
    assert server.protocol("h11").__name__ == "H11Protocol"
