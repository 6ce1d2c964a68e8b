"""Delivery channels behind one interface, chosen by name in configuration.

``sms`` posts to an SMS gateway, ``webhook`` posts a signed JSON body to a partner system (the
city's app push service, for example), ``log`` only records that a message went out. Every
channel passes the notification id along as the idempotency key, so a resend after a crash in
the middle of a send is dropped by the far end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from services.notify import domain
from services.notify.settings import NotifySettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message for one channel. ``phone`` and ``text`` are personal: never logged."""

    notification_id: str
    request_id: str
    event: str
    language: str
    phone: str
    text: str


class ChannelError(Exception):
    """A failed send; ``retryable`` says whether trying again may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Channel(Protocol):
    name: str
    # Whether the channel reaches the citizen's phone (and so counts against the rate limit).
    reaches_phone: bool

    async def send(self, message: Outbound) -> None:
        """Deliver one message or raise :class:`ChannelError`."""


class LogChannel:
    """Writes that a message went out, without the number or the text (personal data)."""

    name = "log"
    reaches_phone = False

    async def send(self, message: Outbound) -> None:
        logger.info(
            "notification delivered to the log channel",
            extra={
                "event_id": message.notification_id,
                "request_id": message.request_id,
                "status": message.event,
                "count": len(message.text),
            },
        )


# Sends in flight per channel by default: a batch's messages go out concurrently, and a queue
# of hundreds waiting for a connection costs more CPU than the sends.
MAX_IN_FLIGHT = 32


class Poster(Protocol):
    """How an HTTP channel reaches its far end; tests pass a fake."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` and return the answer's status code; raise a retryable
        :class:`ChannelError` when no answer came (network trouble, timeout)."""


class AiohttpPoster:
    """POSTs over one aiohttp session with a bounded pool of kept-alive connections.

    ``connections`` should cover every channel's sends in flight, so a send never queues for a
    connection; and should one queue anyway, the wait is not part of its timeout: ``timeout``
    bounds connecting and each read of the answer, as a failed attempt (retried). aiohttp needs
    the running event loop, so the session opens on the first send; :meth:`close` ends it.
    Nothing here logs a URL (a gateway URL may carry credentials).
    """

    def __init__(self, *, connections: int, timeout: float) -> None:
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeout, sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        if self._closed:
            raise ChannelError("unreachable:closed", retryable=True)
        session = self._session or self._open()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                # Read the (small) answer, so the connection goes back to the pool alive.
                await response.read()
                return response.status
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise ChannelError(f"timeout:{type(exc).__name__}", retryable=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ChannelError(f"unreachable:{type(exc).__name__}", retryable=True) from exc

    async def close(self) -> None:
        """Close the session and its connections; later sends fail as retryable."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


class _HttpChannel:
    """A channel that POSTs each message to one URL, at most ``in_flight`` at a time."""

    def __init__(self, poster: Poster, *, url: str, in_flight: int = MAX_IN_FLIGHT) -> None:
        self.poster = poster
        self.url = url
        self._slots = asyncio.Semaphore(in_flight)

    async def _post(self, message: Outbound, content: bytes, headers: dict[str, str]) -> None:
        """POST and sort the failure: network trouble, 5xx, 408 and 429 are worth retrying."""
        headers = {
            "content-type": "application/json",
            "idempotency-key": message.notification_id,
            **headers,
        }
        async with self._slots:
            status = await self.poster.post(self.url, content, headers)
        if status < 300:
            return
        retryable = status >= 500 or status in (408, 429)
        raise ChannelError(f"http_{status}", retryable=retryable)


class SmsGatewayChannel(_HttpChannel):
    """An SMS gateway over HTTP: POST JSON {to, text, idempotency_key} with a bearer token."""

    name = "sms"
    reaches_phone = True

    def __init__(
        self, poster: Poster, *, url: str, token: str, in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        super().__init__(poster, url=url, in_flight=in_flight)
        self.token = token

    async def send(self, message: Outbound) -> None:
        body = {
            "to": message.phone,
            "text": message.text,
            "idempotency_key": message.notification_id,
        }
        auth = {"authorization": f"Bearer {self.token}"} if self.token else {}
        await self._post(message, json.dumps(body, ensure_ascii=False).encode("utf-8"), auth)


class WebhookChannel(_HttpChannel):
    """POST JSON to a partner URL, signed: X-Signature = hex HMAC-SHA256(secret, body)."""

    name = "webhook"
    reaches_phone = True

    def __init__(
        self, poster: Poster, *, url: str, secret: str, in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        super().__init__(poster, url=url, in_flight=in_flight)
        self.secret = secret

    async def send(self, message: Outbound) -> None:
        body = json.dumps(
            {
                "notification_id": message.notification_id,
                "idempotency_key": message.notification_id,
                "request_id": message.request_id,
                "event": message.event,
                "language": message.language,
                "to": message.phone,
                "text": message.text,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        await self._post(message, body, {"x-signature": domain.sign(self.secret, body)})


CHANNEL_NAMES = ("log", "sms", "webhook")


HTTP_CHANNELS = ("sms", "webhook")


def build_channels(names: Sequence[str], settings: NotifySettings, poster: Poster) -> list[Channel]:
    """The configured channels, in order; an unknown name stops the service at start."""
    unknown = [n for n in names if n not in CHANNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown notification channels {unknown}; known: {list(CHANNEL_NAMES)}")
    channels: list[Channel] = []
    for name in dict.fromkeys(names):
        if name == "log":
            channels.append(LogChannel())
        elif name == "sms":
            channels.append(
                SmsGatewayChannel(
                    poster,
                    url=settings.sms_url,
                    token=settings.sms_token,
                    in_flight=settings.send_concurrency,
                )
            )
        else:
            channels.append(
                WebhookChannel(
                    poster,
                    url=settings.webhook_url,
                    secret=settings.webhook_secret,
                    in_flight=settings.send_concurrency,
                )
            )
    return channels
