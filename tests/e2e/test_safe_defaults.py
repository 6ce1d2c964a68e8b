"""The services as processes: without the development flag, each refuses to start on the secrets
published in the repository, says which variables to set, and listens on nothing; with the
flag, or with real secrets, they start and are ready on the real broker and database."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.route.settings import RouteSettings
from services.verify.settings import VerifySettings
from shared.settings import DEVELOPMENT_FLAG, ServiceSettings
from tests.conftest import make_services
from tests.support.services import REPO, ServiceSet

pytestmark = pytest.mark.e2e

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "verify": VerifySettings,
    "route": RouteSettings,
    "notify": NotifySettings,
}
# Every variable whose default is a published development value, read from the settings
# themselves, so that a secret added later is covered here too.
PUBLISHED = {
    service: settings.model_construct().development_defaults()
    for service, settings in SETTINGS.items()
}
REAL_SECRETS = {
    name: f"e2e-{name.lower()}-from-a-store" for names in PUBLISHED.values() for name in names
}


def run_once(services: ServiceSet, service: str) -> subprocess.CompletedProcess[str]:
    env = services.env(service)
    for name in PUBLISHED[service]:
        env.pop(name, None)  # the defaults, whatever the shell running the tests has set
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("flag", ["0", ""])
@pytest.mark.parametrize("service", list(PUBLISHED))
async def test_without_the_flag_a_published_secret_stops_the_start(
    kafka_bootstrap: str, mongodb_uri: str, service: str, flag: str
) -> None:
    services = await make_services(kafka_bootstrap, mongodb_uri, **{DEVELOPMENT_FLAG: flag})
    done = run_once(services, service)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "refusing to start" in output
    for name in PUBLISHED[service]:
        assert name in output
    assert f"{DEVELOPMENT_FLAG}=1" in output
    assert "listening on" not in output
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{services.url(service)}/healthz", timeout=2)


async def test_with_the_flag_the_published_secrets_are_allowed(
    kafka_bootstrap: str, mongodb_uri: str
) -> None:
    services = await make_services(kafka_bootstrap, mongodb_uri, **{DEVELOPMENT_FLAG: "1"})
    assert services.env("intake").get("INTAKE_TRACKING_SECRET") is None
    services.start()  # waits until each /readyz answers 200
    try:
        for service in PUBLISHED:
            assert httpx.get(f"{services.url(service)}/readyz", timeout=5).status_code == 200
    finally:
        services.stop()


async def test_without_the_flag_real_secrets_start(kafka_bootstrap: str, mongodb_uri: str) -> None:
    services = await make_services(
        kafka_bootstrap, mongodb_uri, **{DEVELOPMENT_FLAG: "0"}, **REAL_SECRETS
    )
    services.start()
    try:
        for service in PUBLISHED:
            assert httpx.get(f"{services.url(service)}/readyz", timeout=5).status_code == 200
    finally:
        services.stop()
