"""Intake's HTTP/1.1 protocol: uvicorn's httptools parser (llhttp, in C), whose refusals of
malformed requests reach the client.

httptools costs intake about a sixth less CPU per accepted request than h11. Its parser is
stricter (a header value with a control character in it is malformed, where h11 passes it on),
and uvicorn answers a request it cannot parse with a 400 and closes the connection at once: a
client still sending a large body then gets a reset, and with it the 400 lost (about 40 of the
10,000 generated bad inputs of ``make chaos``, all with bodies over 60 KB). Here the 400 is
followed by the end of the answer stream, and what the client still sends is read and
dropped until it stops, for at most ``LINGER_SECONDS`` and ``LINGER_BYTES`` (a lingering
close, as other HTTP servers do).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

LINGER_SECONDS = 5.0
LINGER_BYTES = 4 * 1024 * 1024


class LingeringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a lingering close after a 400 for a malformed request."""

    _lingered: int | None = None  # bytes read and dropped since the 400; None: not lingering
    _linger_timer: asyncio.TimerHandle | None = None

    def send_400_response(self, msg: str) -> None:
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(msg)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                msg.encode("ascii"),
            ]
        )
        self.transport.write(b"".join(content))
        self._linger()

    def _linger(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer the app may still be writing would follow the 400: it goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._lingered = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._lingered is None:
            super().data_received(data)
            return
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)


def protocol(parser: Literal["h11", "httptools"]) -> type[asyncio.Protocol]:
    """The protocol class of ``INTAKE_HTTP_PARSER``."""
    return LingeringHttpToolsProtocol if parser == "httptools" else H11Protocol
