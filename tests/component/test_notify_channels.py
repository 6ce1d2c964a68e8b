"""Notify's channels: what goes over the wire to the fake gateway (aiohttp, in-process), and
what a channel does with its poster's answers (a fake poster)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator, Mapping

import pytest

from services.notify.channels import (
    AiohttpPoster,
    ChannelError,
    SmsGatewayChannel,
    WebhookChannel,
    build_channels,
)
from services.notify.settings import NotifySettings
from tests.support.records import outbound
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.component

MESSAGE = outbound()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway(token="secret-token").start()
    yield gw
    gw.stop()


@pytest.fixture
async def poster() -> AsyncIterator[AiohttpPoster]:
    http = AiohttpPoster(connections=4, timeout=5.0)
    yield http
    await http.close()


class FakePoster:
    """Records every POST and answers ``status``; ``gate``, when set, holds every answer."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = 0
        self.most_in_flight = 0

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.posts.append((url, body, dict(headers)))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.in_flight -= 1
        return self.status


async def test_sms_posts_to_text_and_key_and_a_resend_is_dropped(
    gateway: FakeGateway, poster: AiohttpPoster
) -> None:
    sms = SmsGatewayChannel(poster, url=f"{gateway.url}/messages", token="secret-token")
    await sms.send(MESSAGE)
    await sms.send(MESSAGE)
    listed = gateway.snapshot()
    assert listed["duplicates"] == 1
    [stored] = listed["messages"]
    assert stored["to"] == "+8613800138000"
    assert stored["text"] == MESSAGE.text
    assert stored["idempotency_key"] == "n-1"


async def test_wrong_credentials_are_not_retried(
    gateway: FakeGateway, poster: AiohttpPoster
) -> None:
    sms = SmsGatewayChannel(poster, url=f"{gateway.url}/messages", token="wrong")
    with pytest.raises(ChannelError) as caught:
        await sms.send(MESSAGE)
    assert caught.value.reason == "http_401"
    assert not caught.value.retryable
    assert gateway.snapshot()["messages"] == []


async def test_server_errors_and_closed_ports_are_retryable(
    gateway: FakeGateway, poster: AiohttpPoster
) -> None:
    gateway.status = 503
    sms = SmsGatewayChannel(poster, url=f"{gateway.url}/messages", token="secret-token")
    with pytest.raises(ChannelError) as busy:
        await sms.send(MESSAGE)
    closed = SmsGatewayChannel(poster, url="http://127.0.0.1:9/messages", token="")
    with pytest.raises(ChannelError) as unreachable:
        await closed.send(MESSAGE)
    assert busy.value.retryable
    assert busy.value.reason == "http_503"
    assert unreachable.value.retryable
    assert unreachable.value.reason.startswith("unreachable:")


async def test_a_slow_answer_is_a_retryable_timeout(gateway: FakeGateway) -> None:
    gateway.hold_seconds = 1.0
    http = AiohttpPoster(connections=1, timeout=0.2)
    try:
        sms = SmsGatewayChannel(http, url=f"{gateway.url}/messages", token="secret-token")
        with pytest.raises(ChannelError) as caught:
            await sms.send(MESSAGE)
    finally:
        await http.close()
    assert caught.value.retryable
    assert caught.value.reason.startswith("timeout:")


async def test_waiting_for_a_free_connection_is_not_part_of_the_timeout(
    gateway: FakeGateway,
) -> None:
    # One connection, two sends: the second waits for the first's answer (0.6 s), then takes
    # as long again itself; 1.2 s in all, more than the timeout, yet each send took 0.6 s.
    gateway.hold_seconds = 0.6
    http = AiohttpPoster(connections=1, timeout=1.0)
    try:
        sms = SmsGatewayChannel(
            http, url=f"{gateway.url}/messages", token="secret-token", in_flight=2
        )
        second = dataclasses.replace(MESSAGE, notification_id="n-2")
        await asyncio.gather(sms.send(MESSAGE), sms.send(second))
    finally:
        await http.close()
    assert sorted(m["idempotency_key"] for m in gateway.snapshot()["messages"]) == ["n-1", "n-2"]


async def test_a_closed_poster_fails_retryably(gateway: FakeGateway) -> None:
    http = AiohttpPoster(connections=1, timeout=5.0)
    sms = SmsGatewayChannel(http, url=f"{gateway.url}/messages", token="secret-token")
    await sms.send(MESSAGE)
    await http.close()
    with pytest.raises(ChannelError) as caught:
        await sms.send(dataclasses.replace(MESSAGE, notification_id="n-2"))
    assert caught.value.retryable
    assert len(gateway.snapshot()["messages"]) == 1


async def test_sms_headers_carry_the_key_and_the_bearer_token() -> None:
    fake = FakePoster()
    await SmsGatewayChannel(fake, url="http://gw/messages", token="t0k").send(MESSAGE)
    await SmsGatewayChannel(fake, url="http://gw/messages", token="").send(MESSAGE)
    [(url, body, headers), (_, _, anonymous)] = fake.posts
    assert url == "http://gw/messages"
    assert headers["authorization"] == "Bearer t0k"
    assert headers["idempotency-key"] == "n-1"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in anonymous
    assert json.loads(body) == {"to": MESSAGE.phone, "text": MESSAGE.text, "idempotency_key": "n-1"}


async def test_webhook_body_is_signed_with_the_secret() -> None:
    fake = FakePoster(status=204)
    await WebhookChannel(fake, url="http://partner/hook", secret="s3").send(MESSAGE)
    [(url, body, headers)] = fake.posts
    assert url == "http://partner/hook"
    expected = hmac.new(b"s3", body, hashlib.sha256).hexdigest()
    assert headers["x-signature"] == expected
    assert headers["idempotency-key"] == "n-1"
    payload = json.loads(body)
    assert payload["idempotency_key"] == "n-1"
    assert payload["to"] == MESSAGE.phone
    assert payload["language"] == "ru"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (408, True), (429, True), (400, False), (404, False)],
)
async def test_answers_sorted_into_retryable_or_not(status: int, retryable: bool) -> None:
    sms = SmsGatewayChannel(FakePoster(status=status), url="http://gw/messages", token="")
    with pytest.raises(ChannelError) as caught:
        await sms.send(MESSAGE)
    assert caught.value.reason == f"http_{status}"
    assert caught.value.retryable is retryable


async def test_at_most_in_flight_sends_at_a_time() -> None:
    fake = FakePoster()
    fake.gate = asyncio.Event()
    sms = SmsGatewayChannel(fake, url="http://gw/messages", token="", in_flight=3)
    sends = [
        asyncio.create_task(sms.send(dataclasses.replace(MESSAGE, notification_id=f"n-{i}")))
        for i in range(10)
    ]
    for _ in range(20):
        await asyncio.sleep(0)
    assert fake.in_flight == 3
    fake.gate.set()
    await asyncio.gather(*sends)
    assert fake.most_in_flight == 3
    assert len(fake.posts) == 10


async def test_channels_by_name() -> None:
    settings = NotifySettings()
    fake = FakePoster()
    channels = build_channels(["sms", "log", "webhook", "sms"], settings, fake)
    assert [c.name for c in channels] == ["sms", "log", "webhook"]
    assert [c.reaches_phone for c in channels] == [True, False, True]
    with pytest.raises(ValueError, match="carrier_pigeon"):
        build_channels(["carrier_pigeon"], settings, fake)


def test_settings_read_channels_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_CHANNELS", '["sms","webhook"]')
    monkeypatch.setenv("NOTIFY_SMS_URL", "http://gw/messages")
    settings = NotifySettings()
    assert settings.channels == ("sms", "webhook")
    assert settings.sms_url == "http://gw/messages"
