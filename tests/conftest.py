"""Fixtures for the real broker and database, and for the four services as processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.support import infra
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

REPO = Path(__file__).resolve().parent.parent
LOG_DIR = REPO / ".run" / "test-logs"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with infra.kafka_bootstrap() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    with infra.mongodb_uri() as uri:
        yield uri


@pytest.fixture
async def mongo(mongodb_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_uri, tz_aware=True)
    yield client
    await client.close()


async def make_services(kafka_bootstrap: str, mongodb_uri: str, **env: str) -> ServiceSet:
    """A service set with its own topics (created up front), groups and database."""
    services = ServiceSet(kafka_bootstrap, mongodb_uri, LOG_DIR, extra_env=dict(env))
    settings = ServiceSettings(
        KAFKA_BOOTSTRAP=kafka_bootstrap, MONGODB_URI=mongodb_uri, TOPIC_PREFIX=services.prefix
    )
    await ensure_topics(settings)
    return services


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    """A fake SMS gateway in this process that records what notify sends, for one module."""
    gw = FakeGateway().start()
    yield gw
    gw.stop()


async def sms_services(
    kafka_bootstrap: str, mongodb_uri: str, gateway: FakeGateway, **env: str
) -> ServiceSet:
    """A service set whose notify sends SMS (only) to ``gateway``."""
    return await make_services(
        kafka_bootstrap,
        mongodb_uri,
        NOTIFY_CHANNELS='["sms"]',
        NOTIFY_SMS_URL=f"{gateway.url}/messages",
        **env,
    )


async def survey_services(
    kafka_bootstrap: str, mongodb_uri: str, gateway: FakeGateway, **env: str
) -> ServiceSet:
    """A service set whose notify sends SMS to ``gateway``, its survey links pointing at its
    own notify and its needs-info links at its own route (``env`` may point them elsewhere)."""
    services = await sms_services(kafka_bootstrap, mongodb_uri, gateway, **env)
    services.extra_env.setdefault("NOTIFY_SURVEY_BASE_URL", services.url("notify"))
    services.extra_env.setdefault("NOTIFY_INFO_BASE_URL", services.url("route"))
    return services


@pytest.fixture(scope="module")
async def pipeline(kafka_bootstrap: str, mongodb_uri: str) -> AsyncIterator[ServiceSet]:
    """The four services running, shared by the tests of one module."""
    services = await make_services(kafka_bootstrap, mongodb_uri)
    with services.running():
        yield services


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    """Settings of ``sms_pipeline`` beyond the defaults: a module that needs some (keys, short
    timers) overrides this fixture."""
    return {}


@pytest.fixture(scope="module")
async def sms_pipeline(
    kafka_bootstrap: str, mongodb_uri: str, gateway: FakeGateway, pipeline_env: dict[str, str]
) -> AsyncIterator[ServiceSet]:
    """The four services running, notify sending SMS to the module's gateway (links to the
    set's own services), with the module's ``pipeline_env``."""
    services = await survey_services(kafka_bootstrap, mongodb_uri, gateway, **pipeline_env)
    with services.running():
        yield services
