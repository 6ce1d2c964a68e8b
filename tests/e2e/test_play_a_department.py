"""README's "Play a department", run as it is written: its shell blocks (curl, kcat, python3)
against the four services started with `make run`'s keys (deploy/local/dev-keys.sh), on the real
broker and database, with the SMS gateway in this process. Only the addresses are this test's
own: the broker, the services' ports, the gateway and the topic prefix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared import requests_store
from tests.support.services import REPO, ServiceSet
from tests.support.settings_env import dev_keys_environment
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
DEV_VARIABLES = (
    "CITYHELP_DEVELOPMENT",
    "INTAKE_OPEN311_API_KEYS",
    "VERIFY_REVIEWER_KEYS",
    "ROUTE_COMMAND_KEYS",
    "ROUTE_BOARD_KEYS",
)
PORTS = {"8080": "intake", "8081": "verify", "8082": "route", "8083": "notify"}


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def play_script() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", section("Play a department"), flags=re.S)
    assert len(blocks) >= 4, "the section shows the citizen, the job, the reports, the survey"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    """The variables `make run` sets for the services (deploy/local/dev-keys.sh)."""
    env = {k: v for k, v in os.environ.items() if k not in DEV_VARIABLES}
    exported = dev_keys_environment(env)
    return {name: exported[name] for name in DEV_VARIABLES}


def localised(script: str, services: ServiceSet, bootstrap: str, gateway: FakeGateway) -> str:
    """The README's commands aimed at this test's broker, services, gateway and topics."""
    assert "B=127.0.0.1:9092" in script
    script = script.replace("B=127.0.0.1:9092", f"B={bootstrap}")
    for port, service in PORTS.items():
        script = script.replace(f"http://127.0.0.1:{port}", services.url(service))
    script = script.replace("http://127.0.0.1:8099", gateway.url)
    return script.replace("-t help.", f"-t {services.prefix}help.")


async def test_the_readme_plays_one_request_through_to_the_survey(
    services: ServiceSet,
    kafka_bootstrap: str,
    gateway: FakeGateway,
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    for tool in ("kcat", "curl", "python3"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run deploy/local/tools.sh", pytrace=False)
    script = localised(play_script(), services, kafka_bootstrap, gateway)
    done = subprocess.run(
        ["bash", "-c", "set -eu -o pipefail\n" + script + '\necho "RID=$RID"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"^RID=(\S+)$", done.stdout, flags=re.M)
    assert found, done.stdout
    rid = found.group(1)

    # The survey's answer and the command centre's totals, as the README says they look.
    assert f'{{"request_id":"{rid}","status":"closed"}}' in done.stdout
    assert '"by_status":{"closed":1}' in done.stdout, done.stdout

    doc = await requests_store.get_request(mongo[services.database], rid)
    assert doc is not None
    assert doc["status"] == "closed"
    steps = [(t["status"], t["actor"]) for t in doc["timeline"]]
    assert ("acknowledged", "route") in steps
    assert ("resolved", "route") in steps
    phone = re.search(r"^PHONE=(\d+)$", script, flags=re.M)
    assert phone
    texts = [m["text"] for m in gateway.snapshot(to=f"+86{phone.group(1)}")["messages"]]
    assert any(f"surveys/{rid}" in text for text in texts), texts
