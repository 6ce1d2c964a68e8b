"""Notify's channels against the fake gateway, in-process: what goes over the wire."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest

from services.notify.channels import (
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


async def test_sms_posts_to_text_and_key_and_a_resend_is_dropped(gateway: FakeGateway) -> None:
    async with httpx.AsyncClient() as client:
        sms = SmsGatewayChannel(client, url=f"{gateway.url}/messages", token="secret-token")
        await sms.send(MESSAGE)
        await sms.send(MESSAGE)
        listed = (await client.get(f"{gateway.url}/messages")).json()
    assert listed["duplicates"] == 1
    [stored] = listed["messages"]
    assert stored["to"] == "+8613800138000"
    assert stored["text"] == MESSAGE.text
    assert stored["idempotency_key"] == "n-1"


async def test_wrong_credentials_are_not_retried(gateway: FakeGateway) -> None:
    async with httpx.AsyncClient() as client:
        sms = SmsGatewayChannel(client, url=f"{gateway.url}/messages", token="wrong")
        with pytest.raises(ChannelError) as caught:
            await sms.send(MESSAGE)
    assert caught.value.reason == "http_401"
    assert not caught.value.retryable
    assert gateway.snapshot()["messages"] == []


async def test_server_errors_and_closed_ports_are_retryable(gateway: FakeGateway) -> None:
    gateway.status = 503
    async with httpx.AsyncClient() as client:
        sms = SmsGatewayChannel(client, url=f"{gateway.url}/messages", token="secret-token")
        with pytest.raises(ChannelError) as busy:
            await sms.send(MESSAGE)
        closed = SmsGatewayChannel(client, url="http://127.0.0.1:9/messages", token="")
        with pytest.raises(ChannelError) as unreachable:
            await closed.send(MESSAGE)
    assert busy.value.retryable
    assert busy.value.reason == "http_503"
    assert unreachable.value.retryable
    assert unreachable.value.reason.startswith("unreachable:")


async def test_webhook_body_is_signed_with_the_secret() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
        hook = WebhookChannel(client, url="http://partner/hook", secret="s3")
        await hook.send(MESSAGE)
    [request] = seen
    body = request.content
    expected = hmac.new(b"s3", body, hashlib.sha256).hexdigest()
    assert request.headers["x-signature"] == expected
    payload = json.loads(body)
    assert payload["idempotency_key"] == "n-1"
    assert payload["to"] == MESSAGE.phone
    assert payload["language"] == "ru"


async def test_channels_by_name() -> None:
    settings = NotifySettings()
    async with httpx.AsyncClient() as client:
        channels = build_channels(["sms", "log", "webhook", "sms"], settings, client)
        assert [c.name for c in channels] == ["sms", "log", "webhook"]
        assert [c.reaches_phone for c in channels] == [True, False, True]
        with pytest.raises(ValueError, match="carrier_pigeon"):
            build_channels(["carrier_pigeon"], settings, client)


def test_settings_read_channels_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_CHANNELS", '["sms","webhook"]')
    monkeypatch.setenv("NOTIFY_SMS_URL", "http://gw/messages")
    settings = NotifySettings()
    assert settings.channels == ("sms", "webhook")
    assert settings.sms_url == "http://gw/messages"
