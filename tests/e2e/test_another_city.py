"""Another city's data file is enough: the four services started with Novosibirsk's
jurisdiction file (tests/fixtures/novosibirsk) and nothing else changed. The citizen's local
number gets Novosibirsk's area code and Russia's country code, the district is one of
Novosibirsk's, the messages name Novosibirsk and show deadlines in its time zone, and the
Open311 form offers its districts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.topics import Topic
from tests.support.kafka import read_topic, wait_until
from tests.support.services import ServiceSet
from tools.fake_gateway import FakeGateway

pytestmark = pytest.mark.e2e

CITY_FILE = Path(__file__).resolve().parents[1] / "fixtures/novosibirsk/jurisdiction.toml"


@pytest.fixture(scope="module")
def pipeline_env() -> dict[str, str]:
    return {"CITYHELP_JURISDICTION_FILE": str(CITY_FILE)}


def sms_about(gateway: FakeGateway, request_id: str) -> list[dict[str, Any]]:
    return [m for m in gateway.snapshot()["messages"] if request_id in m["text"]]


async def test_a_request_in_novosibirsk_is_read_and_told_as_novosibirsk(
    services: ServiceSet, gateway: FakeGateway, kafka_bootstrap: str
) -> None:
    body = {
        "category": "medical",
        "description": "Нужен инсулин для отца",
        "contact": {"name": "Анна", "phone": "222 33 44"},  # a local number, no area code
        "location": {"district": "Ленинский район", "address": "ул. Станиславского, 1"},
        "language": "ru",
    }
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=30) as http:
        response = await http.post("/v1/requests", json=body)
        assert response.status_code == 202, response.text
        rid = response.json()["request_id"]
        definition = await http.get(
            "/open311/v2/services/medical.json", params={"jurisdiction_id": "novosibirsk"}
        )
    assert definition.status_code == 200, definition.text
    attributes = {a["code"]: a for a in definition.json()["attributes"]}
    offered = {v["key"] for v in attributes["district"]["values"]}
    assert offered == {"tsentralny", "zheleznodorozhny", "leninsky", "sovetsky"}

    jobs = await read_topic(
        kafka_bootstrap,
        services.prefix + Topic.DISPATCH_MEDICAL.value,
        until=lambda rs: any(r.key == rid.encode() for r in rs),
        timeout=90,
    )
    job = next(json.loads(r.value) for r in jobs if r.key == rid.encode() and r.value)
    assert job["location"]["district"] == "leninsky"
    assert job["contact"]["phone"] == "+73832223344"

    await wait_until(
        lambda: any("передана" in m["text"] for m in sms_about(gateway, rid)), timeout=90
    )
    messages = sms_about(gateway, rid)
    assert {m["to"] for m in messages} == {"+73832223344"}
    for message in messages:
        assert "Новосибирск" in message["text"]
        assert "Чжэнчжоу" not in message["text"]
    dispatched = next(m["text"] for m in messages if "передана" in m["text"])
    acknowledge_by = datetime.fromisoformat(job["acknowledge_by"])
    local = acknowledge_by.astimezone(ZoneInfo("Asia/Novosibirsk")).strftime("%Y-%m-%d %H:%M")
    shanghai = acknowledge_by.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert local in dispatched
    assert shanghai not in dispatched
