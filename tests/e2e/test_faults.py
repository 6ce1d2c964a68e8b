"""`make chaos` in small: a few hundred requests while each service is killed with SIGKILL,
the broker restarts and the database stops; nothing accepted is lost and nothing is done twice,
counted from the topics, the database and the SMS gateway (tests/chaos/surge.py).

The broker and database restarts go through deploy/local/stack.sh with the environment the
stack was started with, so this runs against the stack of `make test` (or a private one with
the same variables exported), never against one started by someone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.chaos import surge
from tests.chaos.__main__ import summary, table
from tests.chaos.context import ChaosContext, GatewayProcess
from tests.conftest import LOG_DIR, make_services

pytestmark = pytest.mark.e2e

REQUESTS = 300


@pytest.fixture
def gateway() -> Iterator[GatewayProcess]:
    process = GatewayProcess(LOG_DIR).start()
    try:
        yield process
    finally:
        process.stop()


async def test_surge_with_crashes_and_outages_loses_nothing_and_repeats_nothing(
    kafka_bootstrap: str, mongodb_uri: str, gateway: GatewayProcess
) -> None:
    # The surge's clients stand for many citizens behind a proxy on the loopback, as in make chaos.
    services = await make_services(
        kafka_bootstrap, mongodb_uri, **gateway.notify_env(), INTAKE_TRUSTED_PROXIES="127.0.0.1"
    )
    ctx = ChaosContext(
        kafka_bootstrap=kafka_bootstrap,
        mongodb_uri=mongodb_uri,
        services=services,
        scale=REQUESTS / surge.FULL_SIZE,
        gateway_url=gateway.url,
    )
    await asyncio.to_thread(services.start)
    try:
        rows = await surge.run(ctx)
    finally:
        await asyncio.to_thread(services.stop)
    report = table(rows)
    figures = summary(rows)
    assert figures["accepted"] >= REQUESTS, report
    assert figures["lost"] == 0, report
    assert figures["duplicate_effects"] == 0, report
    # Every fault fired and every part came back; every check accounted for every request.
    assert [r.check for r in rows if r.bad] == [], report
